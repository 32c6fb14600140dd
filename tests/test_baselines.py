"""Interpolation baselines: alignment with the downsizer's grid, and the paper's tf.image.resize."""

from __future__ import annotations

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.interpolation import METHODS, upsample, upsample_matrix

SEED = 4
RATIOS = (2, 4, 8)


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
@pytest.mark.parametrize("ratio", RATIOS)
def test_aligned_reproduces_lr_samples(method, ratio):
    lr = np.random.default_rng(SEED).normal(size=(2, 6, 5, 3)).astype(np.float32)
    hr = upsample(lr, ratio, method)
    assert hr.shape == (2, 6 * ratio, 5 * ratio, 3) and hr.dtype == np.float32
    np.testing.assert_allclose(hr[:, ::ratio, ::ratio], lr, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_rows_sum_to_one_and_constants_preserved(method):
    for aligned in (True, False):
        u = upsample_matrix(7, 4, method, aligned)
        np.testing.assert_allclose(u.sum(axis=1), 1.0)
    const = np.full((1, 4, 4, 3), 0.3, dtype=np.float32)
    np.testing.assert_allclose(upsample(const, 4, method), 0.3, rtol=1e-6)


def _smooth_field(n):
    """A smooth periodic field sampled on an n x n lattice, [1, n, n, 1]."""
    y, x = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    f = np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y) + 0.5 * np.sin(2 * np.pi * (x + 2 * y))
    return f[None, :, :, None]


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_smooth_periodic_field_error_falls_with_finer_sampling(method):
    ratio = 4
    errors = []
    for n_lr in (8, 16, 32):
        truth = _smooth_field(n_lr * ratio)
        lr = truth[:, ::ratio, ::ratio]  # exact samples at HR pixels k r
        errors.append(np.max(np.abs(upsample(lr, ratio, method) - truth)))
    assert errors[0] > errors[1] > errors[2]
    # Convergence orders: bilinear O(h^2), Keys bicubic O(h^3): halving h cuts >= 3.5x.
    assert errors[1] / errors[2] > 3.5


def test_aligned_beats_misaligned_on_downsized_field():
    # The LR map made by the downsizer sits on the aligned grid: half-pixel
    # centres shift the reconstruction by (r - 1) / 2 HR pixels.
    ratio = 4
    truth = _smooth_field(64)
    lr = downsample(truth, ratio)
    for method in ("bilinear", "bicubic"):
        err_aligned = np.mean((upsample(lr, ratio, method) - truth) ** 2)
        err_paper = np.mean((upsample(lr, ratio, method, aligned=False) - truth) ** 2)
        assert err_aligned < 0.2 * err_paper


def test_aligned_periodic_commutes_with_lattice_shift():
    # Shifting the LR map by one pixel shifts the periodic aligned result by r pixels.
    lr = np.random.default_rng(SEED).normal(size=(1, 8, 8, 3)).astype(np.float32)
    for method in METHODS:
        a = upsample(np.roll(lr, 1, axis=1), 4, method)
        b = np.roll(upsample(lr, 4, method), 4, axis=1)
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("ratio", (4, 8))
def test_misaligned_matches_tf_image_resize(method, ratio):
    tf = pytest.importorskip("tensorflow")
    lr = np.random.default_rng(SEED).normal(size=(2, 8, 6, 3)).astype(np.float32)
    expected = tf.image.resize(lr, (8 * ratio, 6 * ratio), method=method).numpy()
    np.testing.assert_allclose(upsample(lr, ratio, method, aligned=False), expected, atol=2e-6)


def test_gaussian_smooths_rather_than_interpolates():
    lr = np.zeros((1, 8, 8, 1), dtype=np.float32)
    lr[0, 3, 3, 0] = 1.0
    hr = upsample(lr, 4, "gaussian")
    # Neighbour taps at 1 LR pixel carry exp(-2) of the centre weight.
    centre = 1.0 / (1.0 + 2 * np.exp(-2.0)) ** 2
    assert hr[0, 12, 12, 0] == pytest.approx(centre, rel=1e-5)
    assert hr.sum() == pytest.approx(16.0, rel=1e-5)  # each LR unit spreads over r^2 pixels


def test_reflect_padding_is_mirror():
    # Reflect mode equals the periodic result of the mirror-extended map
    # f0..f5, f4..f1 (period 2 (n - 1)), restricted to the original extent.
    lr = np.random.default_rng(SEED).normal(size=(1, 6, 6, 1)).astype(np.float32)
    extended = np.concatenate([lr, lr[:, -2:0:-1]], axis=1)
    extended = np.concatenate([extended, extended[:, :, -2:0:-1]], axis=2)
    for method in METHODS:
        hr = upsample(lr, 4, method, padding="reflect")
        expected = upsample(extended, 4, method, padding="periodic")[:, :24, :24]
        np.testing.assert_allclose(hr, expected, atol=1e-6)
    assert not np.allclose(
        upsample(lr, 4, "bicubic", padding="reflect"), upsample(lr, 4, "bicubic")
    )


def test_bad_method_is_user_error():
    with pytest.raises(MagsrError, match="method"):
        upsample(np.zeros((1, 4, 4, 3)), 4, "lanczos")
