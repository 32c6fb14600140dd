"""Scoring an SR model against ground truth and interpolation, as Tables 1/2 of Lee et al.

:func:`evaluate` loads a saved SR model and the test split of a dataset,
super-resolves the LR test images, and scores the SR maps and six baselines
with :mod:`magsr_tf.evaluation.metrics`:

- ``gaussian``, ``bilinear``, ``bicubic``: periodic interpolation on the
  downsizer's own grid (the honest baselines; gains are quoted against them);
- ``gaussian_paper``, ``bilinear_paper``, ``bicubic_paper``: the paper's
  ``tf.image.resize`` with half-pixel centres, misaligned by (r - 1)/2 HR
  pixels, kept to show the paper's comparison beside the honest one.

Baselines are scored raw (not unit-normalized), as the paper's tables were
(their baseline MSE/Corr columns violate Corr = 1 - 1.5 MSE). The SR model's
output is unit spins already. Physical observables
(:mod:`magsr_tf.physics.observables` and the energy per spin under the
dataset's Hamiltonian) are computed on unit-normalized maps of the ground
truth, the SR output and the aligned baselines.

Everything returned is a JSON-able dict; :func:`magsr_tf.io.writers.write_json` stores it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.evaluation.metrics import per_image, summarize
from magsr_tf.inference.apply import apply_model, model_channels, model_padding
from magsr_tf.io.writers import write_json
from magsr_tf.ops.interpolation import METHODS, upsample
from magsr_tf.ops.spins import unit_normalize
from magsr_tf.priors.refine import DEFAULT_STEPS as DEFAULT_REFINE_STEPS

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

DATA_DIR = Path("data")
DATA_ALIASES = ("typeI", "typeII")

SR = "sr"
ALIGNED = tuple(METHODS)
PAPER = tuple(f"{m}_paper" for m in METHODS)
ALL_METHODS = (*ALIGNED, *PAPER, SR)
REFINED = ("sr_refine", "bicubic_refine")
LABELS = {
    SR: "SR network",
    "sr_refine": "SR network + refine",
    "bicubic_refine": "bicubic + refine",
    "gaussian": "Gaussian",
    "bilinear": "Bilinear",
    "bicubic": "Bicubic",
    "bicubic_unit": "Bicubic, unit length",
    "gaussian_paper": "Gaussian (paper grid)",
    "bilinear_paper": "Bilinear (paper grid)",
    "bicubic_paper": "Bicubic (paper grid)",
}
"""Display names; "(paper grid)" = tf.image.resize with half-pixel centres."""

PAPER_TABLES: dict[tuple[str, int], dict[str, dict[str, float]]] = {
    # Lee et al., Table 1 (Type I) and Table 2 (Type II), as printed. PSNR is the
    # tables' convention, 10 log10(16 / MSE). Type I x4 Gaussian MSE is printed
    # 0.64 (its PSNR implies about 0.064).
    ("typeI", 4): {
        "gaussian": {"mse": 0.64, "psnr_tables": 24.00, "psnr_tables_std": 0.20, "corr": 0.74},
        "bilinear": {"mse": 0.062, "psnr_tables": 24.14, "psnr_tables_std": 0.24, "corr": 0.77},
        "bicubic": {"mse": 0.061, "psnr_tables": 24.22, "psnr_tables_std": 0.30, "corr": 0.85},
        SR: {"mse": 0.0016, "psnr_tables": 39.96, "psnr_tables_std": 0.02, "corr": 0.9976},
    },
    ("typeI", 8): {
        "gaussian": {"mse": 0.236, "psnr_tables": 18.33, "psnr_tables_std": 0.13, "corr": 0.301},
        "bilinear": {"mse": 0.243, "psnr_tables": 18.20, "psnr_tables_std": 0.18, "corr": 0.353},
        "bicubic": {"mse": 0.262, "psnr_tables": 17.89, "psnr_tables_std": 0.26, "corr": 0.44},
        SR: {"mse": 0.0065, "psnr_tables": 33.96, "psnr_tables_std": 0.03, "corr": 0.99},
    },
    ("typeII", 4): {
        "gaussian": {"mse": 0.0060, "psnr_tables": 34.49, "psnr_tables_std": 2.76, "corr": 0.974},
        "bilinear": {"mse": 0.0059, "psnr_tables": 34.60, "psnr_tables_std": 3.01, "corr": 0.978},
        "bicubic": {"mse": 0.0058, "psnr_tables": 34.70, "psnr_tables_std": 3.56, "corr": 0.986},
        SR: {"mse": 0.00018, "psnr_tables": 49.68, "psnr_tables_std": 1.2, "corr": 0.9997},
    },
    ("typeII", 8): {
        "gaussian": {"mse": 0.027, "psnr_tables": 27.90, "psnr_tables_std": 2.67, "corr": 0.91},
        "bilinear": {"mse": 0.028, "psnr_tables": 27.90, "psnr_tables_std": 2.91, "corr": 0.92},
        "bicubic": {"mse": 0.029, "psnr_tables": 27.81, "psnr_tables_std": 3.37, "corr": 0.94},
        SR: {"mse": 0.00046, "psnr_tables": 45.68, "psnr_tables_std": 1.13, "corr": 0.999},
    },
    ("typeII", 16): {
        "gaussian": {"mse": 0.0883, "psnr_tables": 22.80, "psnr_tables_std": 2.63, "corr": 0.76},
        "bilinear": {"mse": 0.0913, "psnr_tables": 22.66, "psnr_tables_std": 2.79, "corr": 0.78},
        "bicubic": {"mse": 0.0975, "psnr_tables": 22.41, "psnr_tables_std": 3.02, "corr": 0.82},
        SR: {"mse": 0.0061, "psnr_tables": 34.45, "psnr_tables_std": 2.24, "corr": 0.99},
    },
}

KIND_LABELS = {"typeI": "Type I", "typeII": "Type II"}
"""Figure titles: "typeI" is misread as "typel" in sans-serif fonts."""


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


FIGURE_SAMPLES = 2
"""Test images shown in the Fig. 2/3-style comparison."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class EvaluationData:
    """The test split of a dataset at one ratio.

    Attributes:
        path: the HDF5 file.
        kind: "typeI", "typeII" or "unknown".
        ratio: the LR ratio r.
        hr: ground truth ``[n, L, L, C]`` float32.
        lr: LR images ``[n, L/r, L/r, C]`` float32.
        hamiltonian: the dataset's Hamiltonian attribute (parsed JSON), or None.
        n_test: size of the dataset's whole test split (``hr`` may hold fewer).
    """

    path: Path
    kind: str
    ratio: int
    hr: np.ndarray
    lr: np.ndarray
    hamiltonian: dict | None
    n_test: int | None = None


def resolve_data_path(data: str | Path, data_dir: Path = DATA_DIR) -> Path:
    """``typeI``/``typeII`` -> ``data/KIND.h5``, or ``data/KIND_quick.h5`` (what ``fit KIND``
    makes) when only that exists; anything else is a path."""
    if str(data) in DATA_ALIASES:
        full = Path(data_dir) / f"{data}.h5"
        quick = Path(data_dir) / f"{data}_quick.h5"
        return quick if quick.exists() and not full.exists() else full
    return Path(data)


def load_test_split(path: str | Path, ratio: int, max_images: int | None = None) -> EvaluationData:
    """Reads the last ``n_test`` rows (the test split) of ``hr`` and ``lr/x{ratio}``.

    Args:
        path: dataset file (``typeI``/``typeII`` resolve under ``data/``).
        ratio: LR ratio.
        max_images: use only the first this-many test images.

    Raises:
        MagsrError: missing file, no test split, or no LR images at this ratio.
    """
    from magsr_tf.data.format import check_ratio, open_info

    path = resolve_data_path(path)
    info = open_info(path)
    check_ratio(info, ratio)
    if info.n_test < 1:
        raise MagsrError(f"dataset has no test split (n_test = 0): {path}")
    if max_images is not None and max_images < 1:
        raise MagsrError(f"max_images must be positive. Received: max_images={max_images}")
    n_use = info.n_test if max_images is None else min(info.n_test, max_images)
    start = info.n - info.n_test
    with h5py.File(path, "r") as f:
        hr = np.asarray(f["hr"][start : start + n_use], dtype=np.float32)
        lr = np.asarray(f[f"lr/x{ratio}"][start : start + n_use], dtype=np.float32)
        raw = f.attrs.get("hamiltonian")
    hamiltonian = None
    if raw is not None:
        try:
            hamiltonian = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
        except ValueError:
            logger.warning("unreadable hamiltonian attribute in %s; using the default", path)
    if not (np.isfinite(hr).all() and np.isfinite(lr).all()):
        raise MagsrError(f"non-finite values (NaN or inf) in the test split of {path}")
    return EvaluationData(path, info.kind, ratio, hr, lr, hamiltonian, n_test=info.n_test)


# --------------------------------------------------------------------------- model


def match_channels(split: EvaluationData, channels: int) -> EvaluationData:
    """A 1-channel (m_z) model scores the S_z component of 3-component data."""
    if split.hr.shape[-1] == channels:
        return split
    if channels == 1 and split.hr.shape[-1] == 3:
        return dataclasses.replace(split, hr=split.hr[..., 2:], lr=split.lr[..., 2:])
    raise MagsrError(
        f"the model takes {channels} channels but the data have {split.hr.shape[-1]}: {split.path}"
    )


# --------------------------------------------------------------------------- scoring


def baseline_maps(lr: np.ndarray, ratio: int, padding: str = "periodic") -> dict[str, np.ndarray]:
    """The baselines: aligned (``padding``) and the paper's half-pixel ones, and for
    3-component maps ``bicubic_unit``, aligned bicubic normalized to unit length (the
    honest interpolation of spins, about 2 dB above the raw one at x8)."""
    maps = {m: upsample(lr, ratio, m, aligned=True, padding=padding) for m in METHODS}
    maps.update({f"{m}_paper": upsample(lr, ratio, m, aligned=False) for m in METHODS})
    if lr.shape[-1] == 3:
        maps["bicubic_unit"] = unit_normalize(maps["bicubic"])
    return maps


def physical_metrics(spins: np.ndarray, kind: str, hamiltonian=None) -> dict[str, np.ndarray]:
    """Per-image observables of unit-normalized maps: energy per spin, length scale, Q, walls."""
    from magsr_tf.physics.observables import physical_summary

    s = unit_normalize(spins)
    kind_key = kind if kind in DATA_ALIASES else None
    out = dict(physical_summary(s, kind_key))
    if hamiltonian is not None and s.shape[-1] == 3:
        from magsr_tf.physics.hamiltonian import energy_per_spin

        out = {"energy_per_spin": energy_per_spin(s, hamiltonian), **out}
    return out


def score_maps(
    hr: np.ndarray,
    sr: np.ndarray,
    baselines: dict[str, np.ndarray],
    kind: str,
    ratio: int,
    hamiltonian=None,
    physical: bool = True,
    refined: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Image metrics of every method, gains over the baselines and physical metrics.

    ``refined`` holds the physics-informed reconstructions (``"sr_refine"``,
    ``"bicubic_refine"``; see :mod:`magsr_tf.priors.refine`), scored like the SR network.

    Returns:
        ``{"metrics": {method: {metric: {mean, std, n}}}, "per_image": {method:
        {metric: [n]}}, "gains_db": {...}, "physical": {...}, "paper": {...}}``.
        ``physical[method][observable]`` summarizes the observable and
        ``physical_error[method][observable]`` its per-image absolute deviation
        from the ground truth's.
    """
    maps = {**baselines, SR: sr, **(refined or {})}
    per = {name: per_image(hr, maps[name]) for name in maps}
    metrics = {name: {k: summarize(v) for k, v in per[name].items()} for name in per}
    result: dict[str, Any] = {
        "labels": {name: LABELS.get(name, name) for name in maps},
        "metrics": metrics,
        "per_image": {name: {k: v.tolist() for k, v in per[name].items()} for name in per},
        "gains_db": gains(metrics),
        "paper": PAPER_TABLES.get((kind, ratio)),
    }
    if physical:
        phys_names = [SR, *(m for m in REFINED if m in maps), *(m for m in ALIGNED if m in maps)]
        truth_obs = physical_metrics(hr, kind, hamiltonian)
        physical_out = {"ground_truth": {k: summarize(v) for k, v in truth_obs.items()}}
        errors = {}
        for name in phys_names:
            obs = physical_metrics(maps[name], kind, hamiltonian)
            physical_out[name] = {k: summarize(v) for k, v in obs.items()}
            errors[name] = {k: summarize(np.abs(obs[k] - truth_obs[k])) for k in obs}
        result["physical"] = physical_out
        result["physical_error"] = errors
    return result


def refine_maps(
    lr: np.ndarray, sr: np.ndarray, ratio: int, hamiltonian, steps: int, padding: str
) -> dict[str, np.ndarray]:
    """The physics-informed reconstructions scored beside the network (empty if not possible).

    ``"sr_refine"`` starts from the network's SR, ``"bicubic_refine"`` from the
    aligned bicubic; both under the data's Hamiltonian, consistent with ``lr``.
    """
    if not steps or hamiltonian is None or lr.shape[-1] != 3 or padding != "periodic":
        return {}
    from magsr_tf.priors.refine import RefineConfig, refine

    config = RefineConfig(steps=steps)
    return {
        "sr_refine": refine(lr, ratio, hamiltonian, init=sr, config=config).sr,
        "bicubic_refine": refine(lr, ratio, hamiltonian, config=config).sr,
    }


def gains(metrics: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """PSNR gains of the SR network in dB (difference of mean PSNR, MAX = 2).

    ``over_aligned`` (the honest gains) and ``over_paper_grid`` (the paper's
    comparison) per method, and ``over_best_aligned`` against the best aligned
    baseline.
    """
    sr_psnr = metrics[SR]["psnr"]["mean"]
    out: dict[str, Any] = {"over_aligned": {}, "over_paper_grid": {}}
    for m in METHODS:
        if m in metrics:
            out["over_aligned"][m] = sr_psnr - metrics[m]["psnr"]["mean"]
        if f"{m}_paper" in metrics:
            out["over_paper_grid"][m] = sr_psnr - metrics[f"{m}_paper"]["psnr"]["mean"]
    if "bicubic_unit" in metrics:
        out["over_unit_bicubic"] = sr_psnr - metrics["bicubic_unit"]["psnr"]["mean"]
    if out["over_aligned"]:
        best = max((m for m in METHODS if m in metrics), key=lambda m: metrics[m]["psnr"]["mean"])
        out["over_best_aligned"] = {"method": best, "db": out["over_aligned"][best]}
    return out


# --------------------------------------------------------------------------- command


@dataclass(frozen=True)
class EvaluateConfig:
    """What ``magsr-tf evaluate`` does.

    Attributes:
        model: saved SR model (a model folder or a ``.keras`` file).
        data: ``"typeI"``, ``"typeII"`` or a dataset path.
        json_out: JSON file of every number; default ``MODEL_DIR/evaluation_{kind}_x{r}.json``.
        figures: folder for the PNG figures; default ``MODEL_DIR/figures``.
        max_images: score only the first this-many test images (all if None).
        batch_size: SR inference batch size.
        physical: also compute the physical metrics (energy, S(q) peak, Q, walls).
        refine_steps: steps of the physics-informed reconstruction scored beside
            the network ("SR network + refine" from the network's SR, "bicubic +
            refine" from bicubic; :mod:`magsr_tf.priors.refine`); 0 skips it. Needs
            3-component data with a known Hamiltonian.
        overwrite: replace an existing JSON or figure (else refused before scoring).
        noise: LR noise levels sigma of the extra noisy rows
            (:mod:`magsr_tf.evaluation.noisy`); empty: none.
        boundary: "open" adds the window rows (central 3/4 of each LR map, open
            boundary; :mod:`magsr_tf.evaluation.windows`); "periodic": none.
    """

    model: Path
    data: str = "typeI"
    json_out: Path | None = None
    figures: Path | None = None
    max_images: int | None = None
    batch_size: int = 32
    physical: bool = True
    refine_steps: int = DEFAULT_REFINE_STEPS
    overwrite: bool = False
    noise: tuple[float, ...] = ()
    boundary: str = "periodic"

    def __post_init__(self):
        from magsr_tf.ops.windows import check_boundary

        check_boundary(self.boundary, allow_none=False)
        object.__setattr__(self, "noise", tuple(float(s) for s in self.noise))
        if any(not (0 <= s <= 1) for s in self.noise):
            raise MagsrError(f"noise levels must be in [0, 1]. Received: {self.noise}")
        if self.refine_steps < 0:
            raise MagsrError(f"refine_steps must be >= 0. Received: {self.refine_steps}")
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be positive. Received: {self.batch_size}")
        if self.max_images is not None and self.max_images < 1:
            raise MagsrError(f"max_images must be positive. Received: {self.max_images}")


def model_folder(model: Path) -> Path:
    """Where outputs of a model go by default: its folder (or a ``.keras`` file's parent)."""
    model = Path(model)
    return model if model.is_dir() else model.parent


def evaluate(config: EvaluateConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Scores a saved SR model on a dataset's test split (Tables 1/2, Figs. 2/3).

    Writes the JSON file and the comparison figure, and returns the same dict
    (with ``"json"`` and ``"figures"`` holding the written paths).
    """
    from magsr_tf.nn.model import load_sr_model, model_ratio

    sr_model = load_sr_model(config.model)
    ratio = model_ratio(sr_model)
    padding = model_padding(sr_model)
    split = match_channels(
        load_test_split(config.data, ratio, config.max_images), model_channels(sr_model)
    )
    folder = model_folder(config.model)
    figures_dir = Path(config.figures) if config.figures else folder / "figures"
    tag = f"{split.kind}_x{ratio}"
    json_out = Path(config.json_out) if config.json_out else folder / f"evaluation_{tag}.json"
    figure_out = figures_dir / f"evaluate_{tag}.png"
    noise_out = figures_dir / f"noise_{tag}.png"
    windows_out = figures_dir / f"windows_{tag}.png"
    extra = [noise_out] if config.noise else []
    extra += [windows_out] if config.boundary == "open" else []
    for target in (json_out, figure_out, *extra):
        if target.exists() and not config.overwrite:
            raise MagsrError(
                f"{target} already exists; pass --overwrite to replace it, "
                "or --json/--figures to write elsewhere"
            )
    logger.info("scoring %d test images of %s at x%d", len(split.hr), split.path, ratio)
    sr = apply_model(sr_model, split.lr, config.batch_size, progress)
    baselines = baseline_maps(split.lr, ratio, padding)
    ham = None
    if split.hr.shape[-1] == 3 and split.kind in DATA_ALIASES:
        from magsr_tf.physics.hamiltonian_io import hamiltonian_from_attrs

        ham = hamiltonian_from_attrs(split.hamiltonian, split.kind)
    refined = refine_maps(split.lr, sr, ratio, ham, config.refine_steps, padding)
    refine_ham = ham
    if not config.physical:
        ham = None
    result = {
        "command": "evaluate",
        "model": str(config.model),
        "data": str(split.path),
        "kind": split.kind,
        "ratio": ratio,
        "padding": padding,
        "n_images": len(split.hr),
        "n_test": split.n_test,
        "conventions": CONVENTIONS,
        **score_maps(
            split.hr, sr, baselines, split.kind, ratio, ham, config.physical, refined=refined
        ),
    }
    from magsr_tf.evaluation.figures import comparison_figure

    n_show = min(FIGURE_SAMPLES, len(split.hr))
    rows = [
        {
            f"input x{ratio}": split.lr[i],
            "SR network": sr[i],
            **({"SR + refine": refined["sr_refine"][i]} if refined else {}),
            "Gaussian": baselines["gaussian"][i],
            "bilinear": baselines["bilinear"][i],
            "bicubic": baselines["bicubic"][i],
            "ground truth": split.hr[i],
        }
        for i in range(n_show)
    ]
    fig = comparison_figure(
        rows,
        figure_out,
        row_labels=[f"test image {i}" for i in range(n_show)],
        title=f"{kind_label(split.kind)} x{ratio}: SR network vs aligned interpolation",
        highlight="SR network",
    )
    result["figures"] = [str(fig)]
    if config.noise:
        from magsr_tf.evaluation.noisy import noise_figure, score_noisy
        from magsr_tf.inference.noise_level import read_calibration
        from magsr_tf.inference.noise_switch import load_noise_aware

        noise_aware = load_noise_aware(folder, sr_model=sr_model, batch_size=config.batch_size)
        result["noisy"] = score_noisy(
            noise_aware if noise_aware.calibration is not None else sr_model,
            split.hr,
            split.lr,
            ratio,
            config.noise,
            padding,
            hamiltonian=refine_ham,
            refine_steps=config.refine_steps if padding == "periodic" else 0,
            calibration=read_calibration(folder),
            batch_size=config.batch_size,
        )
        title = f"{kind_label(split.kind)} x{ratio}: noisy LR input"
        result["figures"].append(str(noise_figure(result["noisy"], noise_out, title)))
    if config.boundary == "open":
        from magsr_tf.evaluation.windows import rings_figure, score_windows
        from magsr_tf.inference.noise_switch import load_noise_aware

        result["windows"] = score_windows(
            load_noise_aware(folder, sr_model=sr_model, batch_size=config.batch_size),
            split.hr,
            split.lr,
            ratio,
            sr,
            refined["sr_refine"] if refined else None,
            hamiltonian=refine_ham,
            refine_steps=config.refine_steps if padding == "periodic" else 0,
        )
        title = f"{kind_label(split.kind)} x{ratio}: central windows, open boundary"
        result["figures"].append(str(rings_figure(result["windows"], windows_out, title)))
    result["json"] = str(json_out)
    write_json(json_out, result)
    return result


CONVENTIONS = {
    "mse": "mean over sites and components of (s - s')^2",
    "psnr": "10 log10(2^2 / MSE) dB (the paper's formula, MAX = 2)",
    "psnr_tables": "10 log10(16 / MSE) dB (the convention of the paper's tables, +6.02 dB)",
    "corr": "mean over sites of s . s'",
    "aggregate": "per image, then mean and population std over the test images",
    "baselines": "aligned = periodic on the downsizer's grid (LR pixel k at HR pixel k r); "
    "paper grid = tf.image.resize with half-pixel centres; both scored raw",
    "physical": "on unit-normalized maps; q in rad/site, wall length in lattice constants",
}
