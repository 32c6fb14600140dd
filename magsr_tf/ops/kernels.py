"""The fixed Gaussian of Lee et al. (Sci. Rep. 2023): taps, padding and its 1-D operator.

The paper pads the high-resolution map periodically, convolves each component
with a normalized 23x23 Gaussian (sigma = 1 HR pixel) and uses the size ratio
r as the stride; LR pixel k is centred on HR pixel k*r. This leaf module holds
that operator's pieces, shared by :mod:`magsr_tf.ops.downsample` (the dataset
and network operator) and :mod:`magsr_tf.ops.degradation` (other blurs).
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError

RATIOS = (4, 8, 16)
"""Super-resolution ratios of the paper's architecture (one up-sampling block per factor 2)."""
KERNEL_SIZE = 23
SIGMA = 1.0
PAD = KERNEL_SIZE // 2
PADDING_MODES = ("periodic", "reflect")


def gaussian_kernel_1d(size: int = KERNEL_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Normalized 1-D Gaussian taps, shape ``[size]``, float64."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_kernel(size: int = KERNEL_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Normalized 2-D Gaussian kernel, shape ``[size, size]``, float64, sums to 1.

    The 2-D Gaussian is separable, so it is the outer product of the 1-D taps.
    """
    g = gaussian_kernel_1d(size, sigma)
    return np.outer(g, g)


def source_index(i: np.ndarray, n: int, padding: str) -> np.ndarray:
    """Map (possibly out-of-range) HR indices onto ``[0, n)`` for a padding mode."""
    if padding == "periodic":
        return np.mod(i, n)
    # 'reflect' mirrors about the edge pixel without repeating it (numpy/TF REFLECT).
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j < n, j, period - j)


def check_ratio(n_hr: int, ratio: int) -> None:
    """Refuses a ratio that is not a positive integer dividing the image size."""
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise MagsrError(f"ratio must be a positive integer. Received: ratio={ratio!r}")
    if n_hr % ratio:
        raise MagsrError(
            f"image size {n_hr} is not divisible by the ratio. Received: ratio={ratio}"
        )


def gaussian_matrix(n_hr: int, ratio: int, padding: str = "periodic") -> np.ndarray:
    """The paper's 1-D operator ``W`` (``[n_hr // ratio, n_hr]``, float64), padding folded in."""
    check_ratio(n_hr, ratio)
    if padding not in PADDING_MODES:
        raise MagsrError(f"padding must be one of {PADDING_MODES}. Received: padding={padding!r}")
    if padding == "reflect" and n_hr < 2:
        raise MagsrError(f"reflect padding needs at least 2 pixels. Received: size={n_hr}")
    g = gaussian_kernel_1d()
    n_lr = n_hr // ratio
    w = np.zeros((n_lr, n_hr), dtype=np.float64)
    offsets = np.arange(KERNEL_SIZE) - PAD
    for k in range(n_lr):
        cols = source_index(k * ratio + offsets, n_hr, padding)
        np.add.at(w[k], cols, g)
    return w


def apply_separable(hr: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """``LR = Wy @ HR @ Wx.T`` per map and component of ``[n, H, W, C]``; float32 out."""
    lr = np.einsum("ki,nijc,lj->nklc", wy, hr.astype(np.float64), wx, optimize=True)
    return lr.astype(np.float32)
