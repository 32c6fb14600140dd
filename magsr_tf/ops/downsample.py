"""Gaussian filter downsizing: the fixed resolution-lowering operator.

Lee et al. (Sci. Rep. 2023, Experimental section) pad the high-resolution map
periodically, convolve each component with a normalized 23x23 Gaussian
(sigma = 1 HR pixel) and use the size ratio r as the stride. With a padding of
11 on each side, LR pixel k is centred on HR pixel k*r.

The same operator makes the LR datasets (this module) and is the network's
fixed last layer (:class:`magsr_tf.nn.layers.GaussianDownsample`, which takes its
kernel from :func:`gaussian_kernel`).
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


def _source_index(i: np.ndarray, n: int, padding: str) -> np.ndarray:
    """Map (possibly out-of-range) HR indices onto ``[0, n)`` for a padding mode."""
    if padding == "periodic":
        return np.mod(i, n)
    # 'reflect' mirrors about the edge pixel without repeating it (numpy/TF REFLECT).
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j < n, j, period - j)


def downsample_matrix(
    n_hr: int, ratio: int, padding: str = "periodic", degradation=None
) -> np.ndarray:
    """The 1-D operator ``W`` with ``LR = W @ HR @ W.T`` per component.

    Shape ``[n_hr // ratio, n_hr]``. Row k holds the Gaussian taps centred on
    HR pixel ``k * ratio``; taps that fall outside the image are wrapped
    (periodic) or mirrored (reflect), exactly as padding by 11 would.
    ``degradation`` (a spec or :class:`magsr_tf.ops.degradation.Degradation`,
    separable) replaces the sigma = 1 Gaussian; None keeps it.
    """
    _check_ratio(n_hr, ratio)
    if degradation is not None:
        from magsr_tf.ops.degradation import operator_1d, parse_degradation

        degradation = parse_degradation(degradation)
        if not degradation.is_default:
            return operator_1d(n_hr, ratio, degradation, padding)
    if padding not in PADDING_MODES:
        raise MagsrError(f"padding must be one of {PADDING_MODES}. Received: padding={padding!r}")
    if padding == "reflect" and n_hr < 2:
        raise MagsrError(f"reflect padding needs at least 2 pixels. Received: size={n_hr}")
    g = gaussian_kernel_1d()
    n_lr = n_hr // ratio
    w = np.zeros((n_lr, n_hr), dtype=np.float64)
    offsets = np.arange(KERNEL_SIZE) - PAD
    for k in range(n_lr):
        cols = _source_index(k * ratio + offsets, n_hr, padding)
        np.add.at(w[k], cols, g)
    return w


def _check_ratio(n_hr: int, ratio: int) -> None:
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise MagsrError(f"ratio must be a positive integer. Received: ratio={ratio!r}")
    if n_hr % ratio:
        raise MagsrError(
            f"image size {n_hr} is not divisible by the ratio. Received: ratio={ratio}"
        )


def downsample(
    hr: np.ndarray, ratio: int, padding: str = "periodic", degradation=None
) -> np.ndarray:
    """Gaussian-filter downsizing of a batch of maps.

    Args:
        hr: ``[n, H, W, C]`` (or ``[H, W, C]``) high-resolution maps.
        ratio: stride r; ``H`` and ``W`` must be divisible by it.
        padding: ``"periodic"`` for simulated lattices, ``"reflect"`` for
            microscope images.
        degradation: another blur (spec or
            :class:`magsr_tf.ops.degradation.Degradation`); None: the sigma = 1
            Gaussian. A non-separable PSF goes through
            :func:`magsr_tf.ops.degradation.degrade`.

    Returns:
        ``[n, H / r, W / r, C]`` float32 maps; LR pixel (k, l) is centred on
        HR pixel (k r, l r).
    """
    hr = np.asarray(hr)
    squeeze = hr.ndim == 3
    if squeeze:
        hr = hr[None]
    if hr.ndim != 4:
        raise MagsrError(f"expected maps shaped [n, H, W, C]. Received: shape={hr.shape}")
    if degradation is not None:
        from magsr_tf.ops.degradation import degrade, parse_degradation

        degradation = parse_degradation(degradation)
        if not degradation.separable:
            out = degrade(hr, ratio, degradation, padding)
            return out[0] if squeeze else out
    _, h, w, _ = hr.shape
    wy = downsample_matrix(h, ratio, padding, degradation)
    wx = wy if w == h else downsample_matrix(w, ratio, padding, degradation)
    lr = np.einsum("ki,nijc,lj->nklc", wy, hr.astype(np.float64), wx, optimize=True)
    lr = lr.astype(np.float32)
    return lr[0] if squeeze else lr


def downsample_direct(hr: np.ndarray, ratio: int) -> np.ndarray:
    """Reference: periodic pad 11 and a per-pixel 23x23 weighted sum (slow, for tests)."""
    hr = np.asarray(hr, dtype=np.float64)
    padded = np.pad(hr, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode="wrap")
    kern = gaussian_kernel()
    n, h, w, c = hr.shape
    out = np.zeros((n, h // ratio, w // ratio, c))
    for k in range(h // ratio):
        for m in range(w // ratio):
            patch = padded[
                :, k * ratio : k * ratio + KERNEL_SIZE, m * ratio : m * ratio + KERNEL_SIZE
            ]
            out[:, k, m] = np.einsum("nijc,ij->nc", patch, kern)
    return out
