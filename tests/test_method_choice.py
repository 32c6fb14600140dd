"""fit-image's default (--prior auto): the method chosen from the LR image, noise, data weight."""

import json

import numpy as np
import pytest
from conftest import call_main
from PIL import Image

from magsr_tf import MagsrError
from magsr_tf.jobs.method_choice import (
    BICUBIC_SIGN_CHANGES,
    choose_method,
    data_weight,
    interpolate,
    noise_level,
)
from magsr_tf.ops.degradation import degrade, parse_degradation
from magsr_tf.priors.image_prior import CONSISTENCY, synthetic_domains

SEED = 5


def _lr(period: float, ratio: int, shape=(256, 256), wall=1.0, seed=SEED):
    native = synthetic_domains(shape, period, wall, seed)[..., None].astype(np.float32)
    return degrade(native, ratio, parse_degradation("gaussian:1"), "reflect")


def test_choice_follows_the_sign_change_share():
    # Resolved (period 4 r): the prior; aliased (period 1.5 r): bicubic; in between: Lanczos.
    assert choose_method(_lr(16, 4), 4)["method"] == "prior"
    aliased = choose_method(_lr(12, 8), 8)
    assert aliased["method"] == "bicubic" and aliased["lr_sign_changes"] > BICUBIC_SIGN_CHANGES
    assert choose_method(_lr(17, 8), 8)["method"] == "lanczos"
    assert "change sign" in choose_method(_lr(16, 4), 4)["reason"]


def test_interpolations_are_aligned():
    lr = np.random.default_rng(SEED).normal(size=(6, 7, 1)).astype(np.float32)
    for method in ("bicubic", "lanczos"):
        np.testing.assert_allclose(interpolate(lr, 4, method)[::4, ::4], lr, atol=1e-5)
    with pytest.raises(MagsrError):
        interpolate(lr, 4, "nearest")


def test_noise_level_and_data_weight():
    lr = _lr(16, 2, (128, 128))
    noisy = lr + np.random.default_rng(SEED).normal(scale=0.1, size=lr.shape).astype(np.float32)
    clean, loud = noise_level(lr), noise_level(noisy)
    assert clean["method"] == "spectral floor" and clean["sigma"] < loud["sigma"]
    assert 0.09 < loud["sigma"] < 0.2  # an upper bound: texture adds to the floor
    assert noise_level(lr, 0.02) == {"sigma": 0.02, "method": "given"}
    with pytest.raises(MagsrError):
        noise_level(lr, -1.0)
    assert data_weight(0.0, 1.0, CONSISTENCY) == CONSISTENCY
    assert data_weight(0.05, 1.0, CONSISTENCY) == CONSISTENCY  # exact limit kept
    assert data_weight(0.5, 1.0, CONSISTENCY) < data_weight(0.3, 1.0, CONSISTENCY) < CONSISTENCY


def test_fit_image_default_is_auto_and_says_why(tmp_path, capsys, monkeypatch):
    native = synthetic_domains((64, 80), 16.0, 1.5, SEED)
    path = tmp_path / "maze.png"
    Image.fromarray(np.round((native + 1) * 32767.5).astype(np.uint16)).save(path)
    args = ["fit-image", path, "--ratio", "4", "--degrade", "--out", tmp_path / "o"]
    code, captured = call_main(monkeypatch, capsys, *args)
    assert code in (0, None), captured.err
    assert "method: prior" in captured.out and "noise: sigma" in captured.out
    summary = json.loads((tmp_path / "o/fit_image/summary.json").read_text())
    assert summary["method"]["sr"] == "auto (prior)" and summary["method"]["method"] == "prior"
    assert summary["noise"]["method"] == "spectral floor" and summary["noise"]["data_weight"] > 0
    assert summary["config"]["network"] is False  # auto trains no network
    assert not (tmp_path / "o" / "model.keras").exists()
    m = summary["metrics"]
    assert m["auto (prior)"]["pearson_r"] > max(
        m["bicubic"]["pearson_r"], m["lanczos"]["pearson_r"]
    )
    # --noise given: recorded as given.
    args = [*args[:-1], tmp_path / "n", "--noise", "0.05"]
    code, captured = call_main(monkeypatch, capsys, *args)
    summary = json.loads((tmp_path / "n/fit_image/summary.json").read_text())
    assert summary["noise"]["method"] == "given" and summary["noise"]["sigma"] == 0.05


def test_bench_real_default_row_and_noise(tmp_path):
    from magsr_tf.benchmarks.real import bench_real

    native = synthetic_domains((64, 64), 16.0, 1.5, SEED)
    path = tmp_path / "maze.png"
    Image.fromarray(np.round((native + 1) * 32767.5).astype(np.uint16)).save(path)
    rows = bench_real(path, 4, None, ("bicubic", "lanczos", "prior", "default"))
    by = {row["method"]: row for row in rows}
    assert by["default"]["default_method"] == "prior"
    assert by["default"]["pearson_r"] > by["bicubic"]["pearson_r"]
    noisy = bench_real(path, 4, None, ("bicubic", "default"), noise=0.05)
    assert {row["noise"] for row in noisy} == {0.05}
    assert noisy[0]["pearson_r"] < by["bicubic"]["pearson_r"]


def test_wide_walls_get_the_mean_of_prior_and_lanczos():
    from magsr_tf.jobs.method_choice import BLEND_ANISOTROPY, prior_step

    lr = _lr(40, 4, (96, 96), wall=6.0)
    name, image, info = prior_step(lr, 4, parse_degradation("gaussian:1"), "auto")
    assert info["anisotropy"] < BLEND_ANISOTROPY
    assert name == "auto (prior+lanczos)" and info["method"] == "prior+lanczos"
    assert image.shape == (96, 96, 1)
    assert "Lanczos" in info["default"]["reason"]


def test_blend_rule():
    from magsr_tf.jobs.method_choice import blend

    assert blend(0.01, 4) and blend(0.01, 8)
    assert not blend(0.01, 2) and not blend(0.1, 4)
