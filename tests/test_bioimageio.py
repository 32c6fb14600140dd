"""`magsr-tf export MODEL --format bioimageio`: a BioImage Model Zoo package (issue 23)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import call_main, run_cli

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "saved_models" / "typeI_x8"


def test_export_passes_bioimageio_test(tmp_path, monkeypatch, capsys):
    pytest.importorskip("bioimageio.core")
    yaml = pytest.importorskip("yaml")
    from bioimageio.core import test_model

    package = tmp_path / "typeI_x8_bioimageio"
    result = run_cli("export", MODEL, "--format", "bioimageio", "--out", package)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rdf.yaml" in result.stdout
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "MIT"
    assert set(rdf["weights"]) == {"tensorflow_saved_model_bundle"}
    assert rdf["cite"][0]["doi"] == "10.1038/s41598-023-38335-y"
    out_axes = {a.get("id"): a for a in rdf["outputs"][0]["axes"]}
    assert out_axes["y"]["scale"] == pytest.approx(1 / 8)
    steps = [p["id"] for p in rdf["inputs"][0]["preprocessing"]]
    assert steps == ["scale_range", "scale_linear", "clip"]
    sr = np.load(package / "test_output.npy")
    assert sr.shape == (1, 256, 256, 3) and np.abs(sr).max() <= 1.0 + 1e-5
    monkeypatch.chdir(tmp_path)  # bioimageio.core unpacks the weights into the cwd
    summary = test_model(str(package / "rdf.yaml"))
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed
    # an existing package is kept without --overwrite, replaced with it
    args = ("export", MODEL, "--format", "bioimageio", "--out", package)
    code, captured = call_main(monkeypatch, capsys, *args)
    assert code == 1 and "already exists" in captured.err
    stamp = (package / "rdf.yaml").stat().st_mtime_ns
    code, captured = call_main(monkeypatch, capsys, *args, "--overwrite")
    assert code in (0, None), captured.err[-2000:]
    assert (package / "rdf.yaml").stat().st_mtime_ns != stamp
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".old-*"))
    assert (MODEL / "1" / "saved_model.pb").is_file()


def test_bioimageio_needs_out_and_out_needs_the_format(tmp_path, monkeypatch, capsys):
    for args in (("--format", "bioimageio"), ("--format", "tflite", "--out", tmp_path / "p")):
        code, captured = call_main(monkeypatch, capsys, "export", MODEL, *args)
        lines = captured.err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "--out" in lines[0], captured.err


def test_one_component_model_with_a_calibrated_range(tmp_path, monkeypatch):
    """A fit-image-like m_z model trained with --range: scale_linear of that range."""
    pytest.importorskip("bioimageio.core")
    yaml = pytest.importorskip("yaml")
    import json

    from bioimageio.core import test_model

    from magsr_tf.inference.bioimageio import export_bioimageio
    from magsr_tf.inference.export import export_saved_model
    from magsr_tf.nn.model import ModelConfig, build_models

    sr_model = build_models(ModelConfig(ratio=4, channels=1, padding="reflect", residual=True))[0]
    model_dir = tmp_path / "mz_x4"
    export_saved_model(sr_model, model_dir, 1)
    (model_dir / "fit_image").mkdir()
    summary = {"config": {"value_range": [0, 65535]}}
    (model_dir / "fit_image" / "summary.json").write_text(json.dumps(summary))
    rdf_path = export_bioimageio(model_dir, tmp_path / "pkg")
    rdf = yaml.safe_load(rdf_path.read_text())
    steps = rdf["inputs"][0]["preprocessing"]
    assert [p["id"] for p in steps] == ["scale_linear", "clip"]
    assert steps[0]["kwargs"]["gain"] == pytest.approx(2 / 65535)
    raw = np.load(tmp_path / "pkg" / "test_input.npy")
    assert raw.shape == (1, 32, 32, 1) and 0 <= raw.min() and raw.max() <= 65535
    monkeypatch.chdir(tmp_path)
    assert test_model(str(rdf_path)).status == "passed"
