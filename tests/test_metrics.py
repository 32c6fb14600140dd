"""Metric values on hand-computed cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.evaluation.metrics import (
    corr,
    mse,
    psnr,
    psnr_table_convention,
    score,
    summarize,
)
from magsr_tf.ops.spins import unit_normalize

SEED = 20231
L = 8


def _random_spins(rng, n=3, size=L):
    return unit_normalize(rng.normal(size=(n, size, size, 3)))


def test_identical_maps():
    spins = _random_spins(np.random.default_rng(SEED))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero warning for PSNR
        np.testing.assert_allclose(mse(spins, spins), 0.0)
        np.testing.assert_allclose(corr(spins, spins), 1.0, atol=1e-6)
        assert np.all(np.isinf(psnr(spins, spins)))
        assert np.all(np.isinf(psnr_table_convention(spins, spins)))
        s = score(spins, spins)
    assert s["psnr"]["mean"] == np.inf and np.isfinite(s["psnr"]["std"])


def test_opposite_maps():
    # s' = -s: (s - s')^2 = 4 s^2, mean over 3 components of unit vectors = 4/3.
    spins = _random_spins(np.random.default_rng(SEED))
    np.testing.assert_allclose(mse(spins, -spins), 4.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(corr(spins, -spins), -1.0, atol=1e-6)
    np.testing.assert_allclose(psnr(spins, -spins), 10 * np.log10(4 / (4 / 3)), rtol=1e-6)


def test_known_offset_per_image():
    truth = np.zeros((2, L, L, 3))
    pred = truth.copy()
    pred[0] += 0.1  # every component off by 0.1 -> MSE 0.01
    pred[1, ..., 2] += 0.3  # one of three components off by 0.3 -> MSE 0.03
    np.testing.assert_allclose(mse(truth, pred), [0.01, 0.03])
    np.testing.assert_allclose(psnr(truth, pred), 10 * np.log10(4 / np.array([0.01, 0.03])))
    # The tables' convention is 10 log10(4) = 6.02 dB higher.
    np.testing.assert_allclose(
        psnr_table_convention(truth, pred) - psnr(truth, pred), 10 * np.log10(4)
    )


def test_corr_equals_one_minus_1p5_mse_for_unit_spins():
    rng = np.random.default_rng(SEED)
    truth = _random_spins(rng)
    pred = unit_normalize(truth + 0.3 * rng.normal(size=truth.shape))
    np.testing.assert_allclose(corr(truth, pred), 1 - 1.5 * mse(truth, pred), atol=1e-6)
    # The paper's Table 1 pair 0.0016 <-> 0.9976 follows the same relation.
    assert 1 - 1.5 * 0.0016 == pytest.approx(0.9976)


def test_one_channel_corr_is_mean_product():
    rng = np.random.default_rng(SEED)
    a = rng.uniform(-1, 1, size=(2, L, L, 1))
    b = rng.uniform(-1, 1, size=(2, L, L, 1))
    np.testing.assert_allclose(corr(a, b), (a * b).mean(axis=(1, 2, 3)))


def test_summarize_mean_std():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == pytest.approx(2.5)
    assert s["std"] == pytest.approx(np.sqrt(1.25))
    assert s["n"] == 4


def test_score_keys_and_values():
    rng = np.random.default_rng(SEED)
    truth = _random_spins(rng)
    pred = _random_spins(rng)
    s = score(truth, pred)
    assert set(s) == {"mse", "psnr", "psnr_tables", "corr"}
    assert s["mse"]["mean"] == pytest.approx(np.mean(((truth - pred) ** 2).mean(axis=(1, 2, 3))))


def test_unit_normalize():
    rng = np.random.default_rng(SEED)
    v = unit_normalize(3.0 * rng.normal(size=(2, L, L, 3)))
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), 1.0, rtol=1e-6)
    z = unit_normalize(np.array([[[[-3.0], [0.5], [2.0]]]]))
    np.testing.assert_allclose(z.ravel(), [-1.0, 0.5, 1.0])
    assert np.all(unit_normalize(np.zeros((1, 2, 2, 3))) == 0)


def test_shape_mismatch_is_user_error():
    with pytest.raises(MagsrError, match="same shape"):
        mse(np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 1)))
