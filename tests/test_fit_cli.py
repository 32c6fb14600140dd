"""`magsr-tf fit` end to end on a tiny dataset: outputs, resume, and bad input."""

import json

import h5py
import numpy as np
import pytest
from conftest import run_cli, tiny_typeI_dataset

SEED = 21


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return tiny_typeI_dataset(path, n=12, n_test=4, seed=SEED, phases=3)


def test_fit_writes_models_and_scores_then_resumes(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    common = [
        "fit",
        str(tiny_dataset),
        "--ratio",
        "4",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "4",
        "--out",
        str(out),
    ]
    first = run_cli(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["history"]) == 1
    assert (out / "model.keras").is_file()
    assert (out / "1" / "saved_model.pb").is_file()
    test = summary["test"]
    # Recompute one number independently: the aligned bicubic MSE of the test split.
    from magsr_tf.ops.interpolation import upsample

    with h5py.File(tiny_dataset) as f:
        hr, lr = f["hr"][-4:], f["lr/x4"][-4:]
    bicubic = np.mean((upsample(lr, 4, "bicubic") - hr) ** 2)
    assert test["methods"]["bicubic_aligned"]["mse"]["mean"] == pytest.approx(bicubic, rel=1e-5)
    assert 0.0 <= test["methods"]["sr_network"]["mse"]["mean"] <= 4.0

    second = run_cli(*common, "--epochs", "2")
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == 1
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ratio", "3"], "ratio=3"),
        (["--ratio", "16", "--epochs", "1"], "16"),
        (["--epochs", "0"], "epochs=0"),
    ],
)
def test_bad_options(tiny_dataset, tmp_path, args, message):
    result = run_cli("fit", str(tiny_dataset), "--out", str(tmp_path / "m"), *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_missing_and_nan_datasets(tiny_dataset, tmp_path):
    missing = run_cli("fit", str(tmp_path / "nope.h5"), "--ratio", "4")
    assert missing.returncode != 0 and "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = tmp_path / "nan.h5"
    bad.write_bytes(tiny_dataset.read_bytes())
    with h5py.File(bad, "r+") as f:
        f["lr/x4"][2, 0, 0, 0] = np.nan
    result = run_cli("fit", str(bad), "--ratio", "4", "--out", str(tmp_path / "m"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nan" in result.stderr.lower() or "finite" in result.stderr.lower()
