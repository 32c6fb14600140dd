import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.ops.downsample import downsample, downsample_direct
from magsr_tf.ops.kernels import gaussian_kernel

SEED = 1234


def test_kernel_normalized_and_symmetric():
    k = gaussian_kernel()
    assert k.shape == (23, 23)
    assert abs(k.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(k, k.T)
    assert k.argmax() == 11 * 23 + 11


@pytest.mark.parametrize("ratio", [4, 8, 16])
def test_matches_direct_sum_with_wraparound(ratio):
    rng = np.random.default_rng(SEED)
    hr = rng.normal(size=(2, 32, 32, 3))
    np.testing.assert_allclose(downsample(hr, ratio), downsample_direct(hr, ratio), atol=1e-6)


def test_lr_pixel_k_centred_on_hr_pixel_kr():
    hr = np.zeros((1, 64, 64, 1))
    hr[0, 16, 24, 0] = 1.0  # a delta on the grid point of LR pixel (2, 3) at ratio 8
    lr = downsample(hr, 8)
    assert np.unravel_index(lr[0, ..., 0].argmax(), (8, 8)) == (2, 3)
    # A delta at the last HR row wraps onto LR row 0 only through periodic padding.
    hr = np.zeros((1, 64, 64, 1))
    hr[0, 63, 0, 0] = 1.0
    lr = downsample(hr, 8)
    assert lr[0, 0, 0, 0] > 0.05


def test_bad_ratio_rejected():
    with pytest.raises(MagsrError, match="ratio=3"):
        downsample(np.zeros((1, 32, 32, 3)), 3)
