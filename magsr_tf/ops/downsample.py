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
from magsr_tf.ops.degradation import degrade, operator_1d, parse_degradation
from magsr_tf.ops.kernels import (  # noqa: F401  (RATIOS ... PADDING_MODES: the operator's constants)
    KERNEL_SIZE,
    PAD,
    PADDING_MODES,
    RATIOS,
    SIGMA,
    apply_separable,
    check_ratio,
    gaussian_kernel,
    gaussian_kernel_1d,
    gaussian_matrix,
)


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
    check_ratio(n_hr, ratio)
    if degradation is not None:
        degradation = parse_degradation(degradation)
        if not degradation.is_default:
            return operator_1d(n_hr, ratio, degradation, padding)
    return gaussian_matrix(n_hr, ratio, padding)


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
        degradation = parse_degradation(degradation)
        if not degradation.separable:
            out = degrade(hr, ratio, degradation, padding)
            return out[0] if squeeze else out
    _, h, w, _ = hr.shape
    wy = downsample_matrix(h, ratio, padding, degradation)
    wx = wy if w == h else downsample_matrix(w, ratio, padding, degradation)
    lr = apply_separable(hr, wy, wx)
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
