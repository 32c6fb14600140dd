"""One Markdown report of every model's tables and figures under ``saved_models/``.

:func:`build_report` collects what the other commands wrote:

- ``saved_models/NAME/summary.json`` (``magsr-tf fit``) and
  ``train_config.json``: a few headline numbers per model;
- ``saved_models/NAME/evaluation_*.json`` (``magsr-tf evaluate``): the
  Tables 1/2 layout, aligned and paper-grid baselines, the paper's published
  values, gains and physical metrics, and the figures;
- ``saved_models/NAME/noise_*/noise_*.json`` (``magsr-tf experiment noise``);
- ``saved_models/experiments/crossfeed_*/crossfeed_*.json``.

Figures are linked by paths relative to the report, so the report and the
folder can be moved together.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import write_text

logger = logging.getLogger(__name__)

MODELS_DIR = Path("saved_models")
METHOD_ORDER = ("gaussian", "bilinear", "bicubic", "sr")
REFINED = ("sr_refine", "bicubic_refine")
"""Physics-informed methods (magsr_tf.priors.refine), shown beside the aligned baselines."""
METRIC_ROWS = (
    ("mse", "MSE"),
    ("psnr", "PSNR"),
    ("psnr_tables", "PSNR tables"),
    ("corr", "Corr"),
)
LEGEND = (
    "MSE over sites and components; PSNR = 10 log10(4 / MSE) dB (the paper's formula, "
    "MAX = 2); PSNR tables = 10 log10(16 / MSE) dB (the convention of the paper's tables, "
    "+6.02 dB); Corr = mean s·s′; mean ± std over test images. Gains are quoted over the "
    "aligned baselines."
)
SHIPPED = ("typeI_x4", "typeI_x8", "typeII_x4", "typeII_x8", "typeII_x16")
"""The models committed under ``saved_models/`` (``magsr-tf reproduce`` rebuilds them)."""
TABLE_NUMBERS = {"typeI": 1, "typeII": 2}
BASELINES = ("gaussian", "bilinear", "bicubic")
TABLE_ROWS = (
    *BASELINES,
    "bicubic_unit",
    *(f"{m}_paper" for m in BASELINES),
    "sr",
    *REFINED,
)
"""Rows of Tables 1-2 per ratio: aligned and paper-grid baselines, the network, refinements."""
TABLE_LABELS = {
    "gaussian": "Gaussian (aligned)",
    "bilinear": "Bilinear (aligned)",
    "bicubic": "Bicubic (aligned)",
    "bicubic_unit": "Bicubic unit (aligned)",
    "gaussian_paper": "Gaussian (paper grid)",
    "bilinear_paper": "Bilinear (paper grid)",
    "bicubic_paper": "Bicubic (paper grid)",
    "sr": "SR network",
    "sr_refine": "SR network + refine",
    "bicubic_refine": "bicubic + refine",
}
TABLES_LEGEND = (
    "Each shipped network alone (its SavedModel, no refinement) on its test split; "
    '"+ refine" rows add the physics-informed refinement (magsr_tf.priors.refine) under the '
    "data's Hamiltonian. PSNR (MAX=2) = 10 log10(4 / MSE); PSNR tables = 10 log10(16 / MSE), "
    "the convention of the paper's tables. Mean ± std over the test images. The paper's "
    "numbers stand on the paper-grid rows (its comparison: tf.image.resize, half-pixel "
    "centres) and the SR network row. Gains are differences of mean PSNR in dB."
)
OBSERVABLE_LABELS = {
    "energy_per_spin": "E per spin",
    "q_peak": "q peak (rad/site)",
    "qz_peak": "qz peak (rad/site)",
    "topological_charge": "Q",
    "wall_fraction": "wall fraction",
    "wall_length": "wall length",
}


@dataclass(frozen=True)
class ReportConfig:
    """``magsr-tf report``.

    Attributes:
        models_dir: folder holding one sub-folder per model (``saved_models``).
        out: the Markdown file; default ``MODELS_DIR/report.md``, or
            ``MODELS_DIR/tables.md`` with ``tables_only``.
        tables_only: write only Tables 1-2 (the Markdown the README embeds).
        models: the model folders that make Tables 1-2 (default: the shipped
            models, :data:`SHIPPED`).
    """

    models_dir: Path = MODELS_DIR
    out: Path | None = None
    tables_only: bool = False
    models: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.models:
            object.__setattr__(self, "models", SHIPPED)


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        logger.warning("skipping unreadable %s: %s", path, exc)
        return None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table: 4 significant digits; strings (e.g. "inf") unchanged."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


def mean_std(summary: dict | None, digits: int = 4, decibels: bool = False) -> str:
    """``mean ± std``; decibels with two decimals, as the paper prints PSNR."""
    if not summary:
        return "–"
    if decibels and all(isinstance(summary[k], (int, float)) for k in ("mean", "std")):
        return f"{summary['mean']:.2f} ± {summary['std']:.2f}"
    return f"{fmt(summary['mean'], digits)} ± {fmt(summary['std'], 2)}"


def evaluation_tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """The tables of one evaluation as ``(title, header, rows)``, shared by the CLI and report."""
    metrics = result["metrics"]
    labels = result.get("labels", {})
    tables = []
    for title, suffix in (
        ("aligned baselines (honest)", ""),
        ("paper-grid baselines (tf.image.resize, half-pixel)", "_paper"),
    ):
        names = [m + suffix if m != "sr" else "sr" for m in METHOD_ORDER]
        if not suffix:
            names += list(REFINED)
        names = [n for n in names if n in metrics]
        header = ["Metric", *(labels.get(n, n) for n in names)]
        rows = [
            [label, *(mean_std(metrics[n].get(key), decibels="psnr" in key) for n in names)]
            for key, label in METRIC_ROWS
        ]
        tables.append((f"x{result['ratio']} {result['kind']}, {title}", header, rows))
    paper = result.get("paper")
    if paper:
        names = [n for n in METHOD_ORDER if n in paper]
        header = ["Metric", *(labels.get(n, n) for n in names)]
        rows = [
            ["MSE", *(fmt(paper[n]["mse"]) for n in names)],
            [
                "PSNR tables",
                *(
                    f"{paper[n]['psnr_tables']:.2f} ± {paper[n]['psnr_tables_std']:.2f}"
                    for n in names
                ),
            ],
            ["Corr", *(fmt(paper[n]["corr"]) for n in names)],
        ]
        tables.append(
            (
                f"published by Lee et al. (Table {1 if result['kind'] == 'typeI' else 2})",
                header,
                rows,
            )
        )
    gains = result.get("gains_db", {})
    if gains.get("over_aligned"):
        header = ["SR gain in PSNR (dB)", "Gaussian", "Bilinear", "Bicubic"]
        rows = [
            [
                "over aligned (quoted)",
                *(fmt(gains["over_aligned"].get(m), 3) for m in METHOD_ORDER[:3]),
            ],
            [
                "over paper grid",
                *(fmt(gains["over_paper_grid"].get(m), 3) for m in METHOD_ORDER[:3]),
            ],
        ]
        tables.append(("gains", header, rows))
    physical = result.get("physical")
    if physical:
        names = [
            n
            for n in ("ground_truth", "sr", *REFINED, "gaussian", "bilinear", "bicubic")
            if n in physical
        ]
        observables = list(physical["ground_truth"])
        header = [
            "Observable",
            *("ground truth" if n == "ground_truth" else labels.get(n, n) for n in names),
        ]
        rows = [
            [OBSERVABLE_LABELS.get(obs, obs), *(mean_std(physical[n].get(obs)) for n in names)]
            for obs in observables
        ]
        tables.append(("physical metrics (unit-normalized maps)", header, rows))
        errors = result.get("physical_error", {})
        rows = [
            [
                f"|Δ {OBSERVABLE_LABELS.get(obs, obs)}|",
                *(mean_std(errors.get(n, {}).get(obs)) for n in names[1:]),
            ]
            for obs in observables
        ]
        header = ["Observable", *header[2:]]
        tables.append(("per-image deviation from the ground truth", header, rows))
    return tables


def _mean(metrics: dict, name: str, key: str) -> float | None:
    value = metrics.get(name, {}).get(key, {}).get("mean")
    if isinstance(value, str):  # "inf" of identical maps, as written by evaluate's JSON
        try:
            value = float(value)
        except ValueError:
            return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def corr_digits(value: Any) -> int:
    """Significant digits that show a Corr's distance from 1 (0.99997, not "1")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < 1 - value < 1:
        return max(4, math.ceil(-math.log10(1 - value)) + 2)
    return 4


def _corr_cell(summary: dict | None) -> str:
    if not summary:
        return "–"
    return mean_std(summary, digits=corr_digits(summary.get("mean")))


def _db(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def shipped_evaluation(folder: Path) -> dict | None:
    """The Tables 1/2 evaluation JSON of a model folder (None if it has none).

    A folder may hold several (e.g. scored on other data); the one on the
    model's own kind (the name's prefix, ``typeII`` for ``typeII_x8``) wins,
    then the newest.
    """
    paths = sorted(folder.glob("evaluation_*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    kind = folder.name.rsplit("_x", 1)[0]
    paths.sort(key=lambda p: not p.name.startswith(f"evaluation_{kind}_x"))
    for path in paths:
        result = _load(path)
        if result and "metrics" in result and "ratio" in result and "kind" in result:
            return result
    return None


def partial_run(result: dict) -> bool:
    """Whether an evaluation scored only part of its dataset's test split (``--images N``).

    The JSON records ``n_test`` (the whole split) beside ``n_images``; older
    JSONs, such as the shipped ones, scored the whole split and lack it.
    """
    n_test, n_images = result.get("n_test"), result.get("n_images")
    return isinstance(n_test, int) and isinstance(n_images, int) and n_images < n_test


def paper_tables(models_dir: Path, names: tuple[str, ...] = SHIPPED) -> tuple[list[str], list[str]]:
    """Tables 1 (Type I) and 2 (Type II) from the models' evaluation JSONs, as Markdown lines.

    Per kind: one table of MSE, Corr and both PSNR conventions for the aligned
    and paper-grid baselines, the SR network and the refinements, beside the
    paper's numbers; one table of PSNR gains over each baseline.

    Rows from a partial run (:func:`partial_run`) are marked ``x8 (partial)``
    and their source line says how many test images were scored.

    Returns:
        ``(lines, found)``: the Markdown lines and the model names that had an evaluation.
    """
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    missing = []
    for name in names:
        result = shipped_evaluation(Path(models_dir) / name)
        if result is None:
            missing.append(name)
            continue
        by_kind.setdefault(result["kind"], []).append((name, result))
    lines: list[str] = []
    for kind, entries in sorted(by_kind.items(), key=lambda kv: TABLE_NUMBERS.get(kv[0], 9)):
        entries.sort(key=lambda e: e[1]["ratio"])
        number = TABLE_NUMBERS.get(kind)
        title = f"Table {number}" if number else "Table"
        label = {"typeI": "Type I", "typeII": "Type II"}.get(kind, kind)
        header = [
            "ratio",
            "method",
            "MSE",
            "Corr",
            "PSNR, MAX=2 (dB)",
            "PSNR tables (dB)",
            "paper MSE",
            "paper Corr",
            "paper PSNR tables (dB)",
        ]
        rows, sources = [], []
        gain_rows = []
        for name, result in entries:
            ratio, metrics = result["ratio"], result["metrics"]
            paper = result.get("paper") or {}
            partial = partial_run(result)
            cell = f"x{ratio} (partial)" if partial else f"x{ratio}"
            sources.append(
                f"x{ratio}: `{name}`, {result.get('n_images')} test images "
                f"of `{result.get('data')}`"
                + (
                    f" (**partial run**: {result['n_images']} of its {result['n_test']} test "
                    "images; not comparable with the paper)"
                    if partial
                    else ""
                )
            )
            for method in TABLE_ROWS:
                if method not in metrics:
                    continue
                m = metrics[method]
                shown = method if method == "sr" or method.endswith("_paper") else None
                published = paper.get(shown.removesuffix("_paper")) if shown else None
                rows.append(
                    [
                        cell,
                        TABLE_LABELS.get(method, method),
                        mean_std(m.get("mse")),
                        _corr_cell(m.get("corr")),
                        mean_std(m.get("psnr"), decibels=True),
                        mean_std(m.get("psnr_tables"), decibels=True),
                        fmt(published["mse"]) if published else "",
                        fmt(published["corr"]) if published else "",
                        (
                            f"{published['psnr_tables']:.2f} ± {published['psnr_tables_std']:.2f}"
                            if published
                            else ""
                        ),
                    ]
                )
            for method in ("sr", *REFINED):
                psnr = _mean(metrics, method, "psnr")
                if psnr is None:
                    continue
                cells = [cell, TABLE_LABELS[method]]
                for suffix in ("", "_paper"):
                    for base in BASELINES:
                        ref = _mean(metrics, base + suffix, "psnr")
                        cells.append(_db(None if ref is None else psnr - ref))
                    if not suffix:  # the honest baseline of spins, beside the raw one
                        ref = _mean(metrics, "bicubic_unit", "psnr")
                        cells.append(_db(None if ref is None else psnr - ref))
                if method == "sr" and "sr" in paper:
                    cells += [
                        _db(paper["sr"]["psnr_tables"] - paper[b]["psnr_tables"])
                        if b in paper
                        else "–"
                        for b in BASELINES
                    ]
                else:
                    cells += ["", "", ""]
                gain_rows.append(cells)
        lines += [
            f"### {title}: {label}",
            "",
            markdown_table(header, rows),
            "",
            *(f"- {s}" for s in sources),
            "",
            f"**{title} gains: PSNR of the row minus PSNR of the baseline (dB)**",
            "",
            markdown_table(
                [
                    "ratio",
                    "method",
                    "over Gaussian (aligned)",
                    "over Bilinear (aligned)",
                    "over Bicubic (aligned)",
                    "over Bicubic unit (aligned)",
                    "over Gaussian (paper grid)",
                    "over Bilinear (paper grid)",
                    "over Bicubic (paper grid)",
                    "paper: over Gaussian",
                    "paper: over Bilinear",
                    "paper: over Bicubic",
                ],
                gain_rows,
            ),
            "",
        ]
    if missing:
        lines += [
            "Not evaluated (no `evaluation_*.json`): "
            + ", ".join(f"`{n}`" for n in missing)
            + "; `magsr-tf reproduce` builds and evaluates them.",
            "",
        ]
    found = [n for n in names if n not in missing]
    return lines, found


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _image_links(paths: list[str], base: Path, json_dir: Path | None = None) -> list[str]:
    """Markdown image links relative to the report.

    Figure paths in the JSON files are as the command saw them (relative to
    its working folder); if the report runs elsewhere, the figure is looked
    up beside the JSON file and in its ``figures`` folder instead.
    """
    out = []
    for p in paths:
        path = Path(p)
        candidates = [path]
        if json_dir is not None:
            candidates += [json_dir / path.name, json_dir / "figures" / path.name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            logger.warning("figure not found: %s", p)
            continue
        rel = os.path.relpath(found.resolve(), base.resolve())
        out.append(f"![{found.stem}]({Path(rel).as_posix()})")
    return out


def _summary_lines(summary: dict) -> list[str]:
    rows = [[k, fmt(v)] for k, v in summary.items() if isinstance(v, (int, float, str, bool))]
    return [markdown_table(["summary.json", "value"], rows[:20])] if rows else []


def build_report(config: ReportConfig) -> dict[str, Any]:
    """Writes the report; returns ``{"report": path, "models": [...], "experiments": [...]}``."""
    models_dir = Path(config.models_dir)
    if not models_dir.is_dir():
        raise MagsrError(f"no models folder at {models_dir}; train one with `magsr-tf fit`")
    default_name = "tables.md" if config.tables_only else "report.md"
    out = Path(config.out) if config.out else models_dir / default_name
    base = out.parent
    table_lines, shipped = paper_tables(models_dir, config.models)
    if config.tables_only:
        if not shipped:
            raise MagsrError(
                f"no evaluated model among {', '.join(config.models)} in {models_dir}; "
                "run `magsr-tf reproduce` or `magsr-tf evaluate`"
            )
        write_text(out, "\n".join([TABLES_LEGEND, "", *table_lines]).rstrip() + "\n")
        partial = [n for n in shipped if partial_run(shipped_evaluation(models_dir / n) or {})]
        return {"report": str(out), "models": shipped, "experiments": [], "partial": partial}
    lines = [
        "# magsr-tf report",
        "",
        LEGEND + " The paper-grid baselines (tf.image.resize with half-pixel centres) "
        "reproduce the paper's comparison. See docs/evaluation.md.",
        "",
    ]
    if shipped:
        lines += ["## Tables 1-2 (shipped models)", "", TABLES_LEGEND, "", *table_lines]
    models, experiments = [], []
    for folder in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        evaluations = sorted(folder.glob("evaluation_*.json"))
        noise = sorted(folder.glob("noise_*/noise_*.json"))
        if folder.name == "experiments" or not (
            evaluations or noise or (folder / "model.keras").exists()
        ):
            continue
        models.append(folder.name)
        lines += [f"## Model `{folder.name}`", ""]
        summary = _load(folder / "summary.json") if (folder / "summary.json").exists() else None
        if summary:
            lines += [*_summary_lines(summary), ""]
        if not evaluations:
            lines += [f"Not evaluated yet: `magsr-tf evaluate {folder} --data ...`", ""]
        for path in evaluations:
            result = _load(path)
            if not result:
                continue
            lines += [
                f"### Evaluation on `{result.get('data')}` ({result.get('n_images')} test images)",
                "",
            ]
            for title, header, rows in evaluation_tables(result):
                lines += [f"**{title}**", "", markdown_table(header, rows), ""]
            lines += [*_image_links(result.get("figures", []), base, path.parent), ""]
        for path in noise:
            result = _load(path)
            if result:
                lines += [*noise_section(result, base, path.parent), ""]
    exp_dir = models_dir / "experiments"
    for path in sorted(exp_dir.glob("crossfeed_*/crossfeed_*.json")) if exp_dir.is_dir() else []:
        result = _load(path)
        if result:
            experiments.append(str(path))
            lines += [*crossfeed_section(result, base, path.parent), ""]
    write_text(out, "\n".join(lines).rstrip() + "\n")
    return {"report": str(out), "models": models, "experiments": experiments}


def noise_table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["alpha", "max mean Corr", "at iteration", "mean of per-image max", "Corr after 1"]
    rows = [
        [
            fmt(v["alpha"]),
            fmt(v["max_mean_corr"]),
            str(v["best_iteration"]),
            fmt(v["mean_of_max_corr"]),
            mean_std(v["corr_first_iteration"]),
        ]
        for v in result["per_alpha"].values()
    ]
    return header, rows


def noise_section(result: dict, base: Path, json_dir: Path | None = None) -> list[str]:
    header, rows = noise_table(result)
    return [
        f"### Noise response on `{result['data']}` ({result['n_images']} images, "
        f"{result['iterations']} iterations)",
        "",
        markdown_table(header, rows),
        "",
        *_image_links(result.get("figures", []), base, json_dir),
    ]


def crossfeed_table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["pair", "MSE", "PSNR (dB)", "Corr"]
    rows = [
        [label, *(mean_std(p["metrics"][k], decibels=k == "psnr") for k in ("mse", "psnr", "corr"))]
        for label, p in result["pairs"].items()
    ]
    return header, rows


def crossfeed_section(result: dict, base: Path, json_dir: Path | None = None) -> list[str]:
    header, rows = crossfeed_table(result)
    bilinear = "; ".join(
        f"{name}: aligned {fmt(v['aligned']['mean'])} dB, "
        f"paper grid {fmt(v['paper_grid']['mean'])} dB"
        for name, v in result["bilinear_psnr"].items()
    )
    return [
        f"## Cross-feeding x{result['ratio']}",
        "",
        markdown_table(header, rows),
        "",
        f"Ranking by PSNR: {' > '.join(result['ranking'])} "
        f"(paper: {' > '.join(result['paper_ranking'])}). Bilinear PSNR: {bilinear}.",
        "",
        *_image_links(result.get("figures", []), base, json_dir),
    ]
