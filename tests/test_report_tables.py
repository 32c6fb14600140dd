"""`magsr-tf report`: Tables 1-2 of the shipped models next to the paper's numbers."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli

from magsr_tf import MagsrError
from magsr_tf.evaluation.evaluate import score_maps
from magsr_tf.evaluation.report import ReportConfig, build_report
from magsr_tf.io.writers import write_json

SEED = 1203
SIZE = 16
N_IMAGES = 4
# Noise level of each synthetic reconstruction: the network is best, the
# refinements in between, so every gain has a known sign.
NOISE = {
    "gaussian": 0.5,
    "bilinear": 0.45,
    "bicubic": 0.4,
    "bicubic_unit": 0.3,
    "gaussian_paper": 0.6,
    "bilinear_paper": 0.55,
    "bicubic_paper": 0.5,
    "sr": 0.05,
    "sr_refine": 0.03,
    "bicubic_refine": 0.1,
}


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def fake_evaluation(kind: str, ratio: int, seed: int, refined: bool = True):
    """A result dict with the structure `magsr-tf evaluate` writes, from known maps."""
    rng = np.random.default_rng(seed)
    hr = _unit(rng.normal(size=(N_IMAGES, SIZE, SIZE, 3))).astype("float32")
    maps = {k: (hr + s * rng.normal(size=hr.shape)).astype("float32") for k, s in NOISE.items()}
    baselines = {k: v for k, v in maps.items() if k not in ("sr", "sr_refine", "bicubic_refine")}
    extra = {k: maps[k] for k in ("sr_refine", "bicubic_refine")} if refined else None
    result = score_maps(hr, maps["sr"], baselines, kind, ratio, physical=False, refined=extra)
    result.update(kind=kind, ratio=ratio, n_images=N_IMAGES, data=f"data/{kind}_reproduce.h5")
    return result, hr, maps


def _mean_psnr(hr, x):
    mse = np.mean((hr - x) ** 2, axis=(1, 2, 3))
    return np.mean(10 * np.log10(4 / mse))


@pytest.fixture
def models_dir(tmp_path):
    root = tmp_path / "saved_models"
    truths = {}
    for i, (name, kind, ratio) in enumerate(
        [("typeI_x4", "typeI", 4), ("typeII_x16", "typeII", 16), ("typeII_x8", "typeII", 8)]
    ):
        result, hr, maps = fake_evaluation(kind, ratio, SEED + i, refined=name != "typeII_x8")
        write_json(root / name / f"evaluation_{kind}_x{ratio}.json", result)
        truths[name] = (result, hr, maps)
    (root / "typeI_quick_x8").mkdir()  # a user's model: never in Tables 1-2
    return root, truths


def _row(text: str, start: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(start)]
    return [c.strip() for c in line.strip("|").split("|")]


def test_tables_next_to_the_paper(models_dir):
    root, truths = models_dir
    result = build_report(ReportConfig(models_dir=root, tables_only=True))
    assert result["models"] == ["typeI_x4", "typeII_x8", "typeII_x16"]
    text = (root / "tables.md").read_text()
    assert text.index("### Table 1: Type I") < text.index("### Table 2: Type II")
    # Type II rows in ratio order, whatever the order of the folders.
    assert text.index("| x8 | SR network |") < text.index("| x16 | SR network |")
    assert "| x8 | SR network + refine |" not in text  # only where evaluated

    evaluation, hr, maps = truths["typeI_x4"]
    text = text[: text.index("Table 1 gains")]  # Table 1 itself
    sr = _row(text, "| x4 | SR network |")
    mse = np.mean((hr - maps["sr"]) ** 2, axis=(1, 2, 3))
    assert sr[2].startswith(f"{mse.mean():.4g} ± ")
    psnr_tables = np.mean(10 * np.log10(16 / mse))
    assert sr[5].startswith(f"{psnr_tables:.2f} ± ")
    # Both conventions: tables = MAX=2 + 10 log10(4).
    assert float(sr[5].split()[0]) - float(sr[4].split()[0]) == pytest.approx(6.02, abs=0.011)
    # The paper's Table 1 SR cell, on the SR row and on the paper-grid row only.
    assert sr[6:] == ["0.0016", "0.9976", "39.96 ± 0.02"]
    assert _row(text, "| x4 | Bicubic (paper grid) |")[6] == "0.061"
    assert _row(text, "| x4 | Bicubic (aligned) |")[6:] == ["", "", ""]
    assert "| x4 | SR network + refine |" in text and "| x4 | bicubic + refine |" in text


def test_corr_near_one_keeps_its_distance_from_one():
    from magsr_tf.evaluation.report import _corr_cell

    assert _corr_cell({"mean": 0.9999692, "std": 4.1e-06}).startswith("0.9999692 ± ")
    assert _corr_cell({"mean": 0.8437, "std": 0.0094}).startswith("0.8437 ± ")
    assert _corr_cell({"mean": 1.0, "std": 0.0}).startswith("1 ± ")


def test_gains_over_aligned_and_paper_grid(models_dir):
    root, truths = models_dir
    build_report(ReportConfig(models_dir=root, tables_only=True))
    text = (root / "tables.md").read_text()
    _, hr, maps = truths["typeI_x4"]
    gains_part = text[text.index("Table 1 gains") :]
    row = _row(gains_part, "| x4 | SR network |")
    sr = _mean_psnr(hr, maps["sr"])
    expected = [
        f"{sr - _mean_psnr(hr, maps[b]):+.2f}"
        for b in (
            "gaussian",
            "bilinear",
            "bicubic",
            "bicubic_unit",
            "gaussian_paper",
            "bilinear_paper",
        )
    ]
    assert row[2:8] == expected
    # Unit length is the better interpolation of spins: the honest gain is smaller.
    assert float(row[5]) < float(row[4])
    assert float(row[8]) > 0
    # The paper's own gain: its SR PSNR minus its bicubic PSNR (39.96 - 24.22).
    assert row[11] == "+15.74"
    refine = _row(gains_part, "| x4 | bicubic + refine |")
    assert float(refine[4]) > 0  # refinement beats plain bicubic
    assert refine[9:] == ["", "", ""]


def test_full_report_opens_with_the_tables_and_lists_missing_models(models_dir):
    root, _ = models_dir
    build_report(ReportConfig(models_dir=root))
    text = (root / "report.md").read_text()
    tables = text.index("## Tables 1-2 (shipped models)")
    assert tables < text.index("## Model `typeI_x4`")
    assert "Not evaluated (no `evaluation_*.json`): `typeI_x8`, `typeII_x4`" in text
    assert "typeI_quick_x8" not in text[: text.index("## Model")]


def test_no_evaluated_shipped_model_is_an_error(tmp_path):
    (tmp_path / "typeI_quick_x8").mkdir()
    with pytest.raises(MagsrError, match="no evaluated model"):
        build_report(ReportConfig(models_dir=tmp_path, tables_only=True))


def test_report_tables_command(models_dir, tmp_path):
    root, _ = models_dir
    out = tmp_path / "README_tables.md"
    proc = run_cli("report", "--models", root, "--tables", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Tables 1-2 of 3 model(s)" in proc.stdout
    assert out.read_text().count("| SR network |") == 6  # Tables and gains, 3 models
