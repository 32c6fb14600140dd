"""Noisy LR: the noise model, the noise-level estimators, the noise-aware refine weights,
the training augmentation and the ``--noise`` options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli, unit_maps

from magsr_tf import MagsrError
from magsr_tf.inference.noise_level import (
    calibrate,
    estimate_noise,
    lr_residual,
    parse_noise,
    sigma_from_residual,
)
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.noise import CLEAN_SIGMA, add_noise, shorten, spectral_noise
from magsr_tf.priors.refine import RefineConfig, misfit_weights

NOISE_SEED = 2718
SIGMAS = (0.01, 0.03, 0.1)


def smooth_maps(n: int, size: int, seed: int) -> np.ndarray:
    """Band-limited unit-spin maps (a few long waves): clean LR maps with an empty top band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] * 2 * np.pi / size
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        field = np.zeros((size, size, 3))
        for _ in range(4):
            k = rng.integers(-2, 3, size=2)
            phase = rng.uniform(0, 2 * np.pi, size=3)
            field += np.cos(k[0] * yy[..., None] + k[1] * xx[..., None] + phase)
        field[..., 2] += 1.5
        out[i] = field / np.linalg.norm(field, axis=-1, keepdims=True)
    return out


def test_add_noise_has_the_stated_sigma_and_keeps_vectors_short():
    rng = np.random.default_rng(NOISE_SEED)
    lr = np.zeros((4, 64, 64, 3), np.float32)  # zero vectors: nothing is shortened
    for sigma in SIGMAS:
        noisy = add_noise(lr, sigma, rng)
        assert abs(noisy.std() / sigma - 1) < 0.02
    spins = unit_maps((4, 16, 16, 3), NOISE_SEED)
    noisy = add_noise(spins, 0.1, rng)
    assert np.linalg.norm(noisy, axis=-1).max() <= 1 + 1e-6
    assert np.abs(add_noise(spins[..., :1], 0.5, rng)).max() <= 1
    per_image = add_noise(lr, np.array([0.0, 0.1, 0.0, 0.1]), rng)
    assert per_image[0].std() == 0 and per_image[1].std() > 0.09
    with pytest.raises(MagsrError, match=">= 0"):
        add_noise(lr, -0.1, rng)


def test_shorten_rule():
    x = np.array([[[[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]]]], np.float32)
    np.testing.assert_allclose(shorten(x)[0, 0], [[0.6, 0.8, 0.0], [0.3, 0.4, 0.0]], rtol=1e-6)


def test_spectral_floor_is_sigma_for_white_noise_and_small_for_smooth_maps():
    rng = np.random.default_rng(NOISE_SEED)
    white = 0.05 * rng.standard_normal((3, 64, 64, 3))
    assert np.all(np.abs(spectral_noise(white) / 0.05 - 1) < 0.1)
    smooth = smooth_maps(3, 64, NOISE_SEED)
    assert spectral_noise(smooth).max() < 0.01
    noisy = add_noise(smooth, 0.03, rng)
    assert np.all(np.abs(spectral_noise(noisy) / 0.03 - 1) < 0.2)
    with pytest.raises(MagsrError, match="at least 4x4"):
        spectral_noise(np.zeros((1, 2, 2, 3)))


def test_residual_estimate_inverts_its_calibration():
    """An ideal denoiser (returns the clean state's SR) gives residual = noise; the
    calibration of the same kind of maps then returns sigma from the residual."""
    ratio = 4
    rng = np.random.default_rng(NOISE_SEED)
    hr = np.repeat(np.repeat(smooth_maps(6, 16, 3), ratio, axis=1), ratio, axis=2)
    lr_clean = downsample(hr, ratio)

    def oracle(lr):  # the HR map of the nearest clean LR map: an ideal denoiser
        return np.stack([hr[np.argmin([np.mean((x - c) ** 2) for c in lr_clean])] for x in lr])

    cal = calibrate(oracle, lr_clean[:3], ratio, sigmas=(0.0, 0.01, 0.03, 0.1))
    assert cal["residual"][0] < 1e-6
    assert np.all(np.diff(cal["residual"]) > 0)
    for sigma in (0.02, 0.05):
        noisy = add_noise(lr_clean[3:], sigma, rng)
        est = estimate_noise(noisy, ratio, oracle(noisy), cal)
        assert est.method == "network residual"
        assert np.all(np.abs(est.sigma / sigma - 1) < 0.2), est.sigma
    assert lr_residual(lr_clean, hr, ratio).max() < 1e-6
    assert sigma_from_residual([0.0], cal)[0] == 0.0
    flat = {"sigma": [0, 0.1], "residual": [0.01, 0.01]}
    with pytest.raises(MagsrError, match="flat"):
        sigma_from_residual([0.01], flat)


def test_refine_weights_follow_the_noise_level():
    config = RefineConfig()
    mu, exact = misfit_weights([0.0, CLEAN_SIGMA / 2, 0.05, 0.1], 8, config)
    assert list(exact) == [True, True, False, False]
    assert mu[0] == config.weight
    assert mu[2] == pytest.approx(config.noise_kappa / (0.05**2 * 64))
    assert mu[2] / mu[3] == pytest.approx(4.0)
    _, exact = misfit_weights([0.0], 8, RefineConfig(constraint="penalty"))
    assert not exact[0]
    with pytest.raises(MagsrError, match="noise_kappa"):
        RefineConfig(noise_kappa=0)


def test_parse_noise():
    assert parse_noise("auto") is None and parse_noise(None) is None
    assert parse_noise("0.05") == 0.05
    for bad in ("loud", "-0.1", "nan", "2"):
        with pytest.raises(MagsrError, match="--noise"):
            parse_noise(bad)


def test_training_noise_is_deterministic_and_short():
    tf = pytest.importorskip("tensorflow")
    from magsr_tf.training.train import noisy_batch

    lr = tf.constant(unit_maps((16, 8, 8, 3), NOISE_SEED))
    a = noisy_batch(lr, 0.1, 0.25, tf.constant(7), 0, seed=1).numpy()
    b = noisy_batch(lr, 0.1, 0.25, tf.constant(7), 0, seed=1).numpy()
    c = noisy_batch(lr, 0.1, 0.25, tf.constant(8), 0, seed=1).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.linalg.norm(a, axis=-1).max() <= 1 + 1e-6
    changed = np.any(np.abs(a - lr.numpy()) > 0, axis=(1, 2, 3))
    assert 0 < changed.sum() < 16  # some images stay clean, most do not


def refine_cli(tmp_path, *options):
    """``magsr-tf refine tmp_path/lr.npy`` (x4, Type I) into ``tmp_path/out`` with ``options``."""
    lr = tmp_path / "lr.npy"
    out = tmp_path / "out"
    return run_cli("refine", lr, "--ratio", "4", "--hamiltonian", "typeI", *options, "--out", out)


def test_cli_noise_option_errors(tmp_path):
    np.save(tmp_path / "lr.npy", unit_maps((8, 8, 3), NOISE_SEED))
    result = refine_cli(tmp_path, "--noise", "loud")
    assert_one_line_error(result, "--noise must be 'auto' or a number")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given", ["0.05", "auto"])
def test_refine_records_the_noise_level(tmp_path, given):
    pytest.importorskip("tensorflow")
    lr = add_noise(smooth_maps(1, 8, NOISE_SEED), 0.05, np.random.default_rng(1))
    np.save(tmp_path / "lr.npy", lr)
    result = refine_cli(tmp_path, "--steps", "10", "--noise", given)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "lr_refine.json").read_text())
    noise = record["noise"]
    assert noise["method"] == ("given" if given != "auto" else "spectral floor")
    assert noise["sigma_mean"] == pytest.approx(0.05, rel=0.0 if given != "auto" else 0.5)


def test_switch_level_is_where_the_companion_stays_better():
    from magsr_tf.inference.noise_switch import switch_level

    ratio = 4
    hr = np.repeat(np.repeat(smooth_maps(3, 8, 5), ratio, axis=1), ratio, axis=2)
    lr_clean = downsample(hr, ratio)

    def copy_noise(lr):  # a "clean" network: exact on clean input, copies the noise
        return hr + np.repeat(np.repeat(lr - lr_clean, ratio, axis=1), ratio, axis=2)

    def denoise(lr):  # a "companion": always the clean state, slightly biased
        return shorten(hr * 0.99 + 0.01)

    result = switch_level(copy_noise, denoise, lr_clean, ratio)
    assert result["switch_sigma"] is not None and result["switch_sigma"] > 0
    i = result["sigma"].index(result["switch_sigma"])
    assert all(
        n < c
        for n, c in zip(result["noisy_lr_error"][i:], result["clean_lr_error"][i:], strict=True)
    )
    assert result["noisy_lr_error"][0] > result["clean_lr_error"][0]  # clean input: keep clean


def test_policy_kappa_takes_the_nearest_level_and_keeps_where_told():
    from magsr_tf.inference.noise_switch import policy_kappa

    policy = {"sigma": [0.02, 0.05, 0.1], "kappa": [0.012, None, 0.05]}
    k = policy_kappa(policy, [0.015, 0.04, 0.09, 0.3], default=1.0)
    assert k[0] == 0.012 and np.isnan(k[1]) and k[2] == 0.05 and k[3] == 0.05
    assert list(policy_kappa(None, [0.05, 0.1], default=0.7)) == [0.7, 0.7]


def test_refine_keeps_the_start_where_the_policy_says_so():
    pytest.importorskip("tensorflow")
    from magsr_tf.priors.refine import refine

    lr = add_noise(smooth_maps(2, 8, NOISE_SEED), 0.05, np.random.default_rng(2))
    start = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    start = start / np.linalg.norm(start, axis=-1, keepdims=True)
    result = refine(
        lr,
        4,
        "typeI",
        init=start,
        config=RefineConfig(steps=20),
        noise=0.05,
        kappa=[np.nan, 0.012],
    )
    np.testing.assert_allclose(result.sr[0], start[0], atol=1e-6)
    assert np.abs(result.sr[1] - start[1]).max() > 1e-3
    assert np.isfinite(result.energy_per_spin).all() and np.isfinite(result.lr_misfit).all()
