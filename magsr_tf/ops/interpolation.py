"""Interpolation baselines: Gaussian, bilinear and bicubic up-sampling of LR maps.

Two sampling grids are offered, and the difference matters a lot:

- **aligned** (the honest baseline, default): the grid of the Gaussian
  downsizer, :mod:`magsr_tf.ops.downsample`, whose LR pixel k is centred on HR
  pixel k r. Up-sampled HR pixel i therefore sits at LR coordinate x = i / r,
  and the LR map is continued periodically (simulated lattices) or by mirror
  reflection (microscope images). Bilinear and bicubic reproduce the LR
  samples exactly at HR pixels k r.
- **misaligned** (``aligned=False``, the paper's): ``tf.image.resize`` with
  its default half-pixel centres, x = (i + 1/2) / r - 1/2, and no periodic
  continuation (taps outside the image get weight 0 and the rest are
  renormalized, which for bilinear is edge clamping). Relative to the
  downsizer's grid this shifts the result by (r - 1) / 2 HR pixels; the
  baseline columns of Lee et al.'s Tables 1/2 are reproduced by it (see
  DESIGN.md), so it is kept, labelled, for the side-by-side.

Kernels (identical on both grids, those of ``tf.image.resize``):

- ``"bilinear"``: the triangle kernel, support 1 LR pixel.
- ``"bicubic"``: Keys' cubic convolution with a = -0.5 (as TF and PIL), support 2.
- ``"gaussian"``: the paper's "Gaussian" column is ``tf.image.resize``'s
  Gaussian method: exp(-d^2 / (2 sigma^2)) with sigma = 0.5 LR pixel, cut at
  |d| < 1.5 LR pixels (Turkowski's 3-pixel Gaussian), weights normalized per
  output pixel. It is a smoothing interpolation: it does not reproduce the LR
  samples. (Not the adjoint of the downsizer: the downsizer's sigma is 1 HR
  pixel, far narrower than the LR spacing, and its normalized adjoint
  degenerates to nearest-neighbour blocks.)

Every kernel is separable, so up-sampling is ``U @ LR @ U.T`` per component
with a 1-D ``[h r, h]`` matrix ``U`` (:func:`upsample_matrix`).
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError

METHODS = ("gaussian", "bilinear", "bicubic")
PADDINGS = ("periodic", "reflect")

KEYS_A = -0.5
"""Keys' cubic-convolution parameter used by TensorFlow and PIL."""

GAUSSIAN_RADIUS = 1.5
GAUSSIAN_SIGMA = GAUSSIAN_RADIUS / 3.0
"""tf.image.resize's Gaussian kernel, in input (LR) pixels."""

_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0, "gaussian": GAUSSIAN_RADIUS}


def kernel(method: str, d: np.ndarray) -> np.ndarray:
    """Interpolation kernel weights at offsets ``d`` (in LR pixels), unnormalized."""
    d = np.abs(np.asarray(d, dtype=np.float64))
    if method == "bilinear":
        return np.maximum(1.0 - d, 0.0)
    if method == "bicubic":
        a = KEYS_A
        inner = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
        outer = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
        return np.where(d <= 1.0, inner, np.where(d < 2.0, outer, 0.0))
    if method == "gaussian":
        return np.where(d < GAUSSIAN_RADIUS, np.exp(-0.5 * (d / GAUSSIAN_SIGMA) ** 2), 0.0)
    raise MagsrError(f"method must be one of {METHODS}. Received: method={method!r}")


def _wrap(j: np.ndarray, n: int, padding: str) -> np.ndarray:
    if padding == "periodic":
        return np.mod(j, n)
    if n == 1:
        return np.zeros_like(j)
    # Mirror about the edge pixel without repeating it, as the downsizer's reflect mode.
    period = 2 * (n - 1)
    k = np.mod(j, period)
    return np.where(k < n, k, period - k)


def upsample_matrix(
    n_lr: int,
    ratio: int,
    method: str = "bicubic",
    aligned: bool = True,
    padding: str = "periodic",
) -> np.ndarray:
    """The 1-D up-sampling operator ``U``, shape ``[n_lr * ratio, n_lr]``, float64.

    ``HR = U @ LR @ U.T`` per component. Each row sums to 1.

    Args:
        n_lr: LR size along one axis.
        ratio: up-sampling ratio r.
        method: one of :data:`METHODS`.
        aligned: the downsizer's grid (x = i / r, padded periodically or by
            reflection) if True; ``tf.image.resize``'s half-pixel centres with
            out-of-image taps dropped if False (``padding`` is then ignored).
        padding: ``"periodic"`` or ``"reflect"`` (aligned grid only).
    """
    if method not in METHODS:
        raise MagsrError(f"method must be one of {METHODS}. Received: method={method!r}")
    if padding not in PADDINGS:
        raise MagsrError(f"padding must be one of {PADDINGS}. Received: padding={padding!r}")
    if not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise MagsrError(f"ratio must be a positive integer. Received: ratio={ratio!r}")
    if n_lr < 1:
        raise MagsrError(f"LR size must be positive. Received: size={n_lr}")
    n_hr = n_lr * ratio
    i = np.arange(n_hr, dtype=np.float64)
    x = i / ratio if aligned else (i + 0.5) / ratio - 0.5
    support = _SUPPORT[method]
    offsets = np.arange(-int(np.ceil(support)) - 1, int(np.ceil(support)) + 2)
    base = np.floor(x).astype(np.int64)
    taps = base[:, None] + offsets[None, :]  # [n_hr, n_taps] LR indices, unwrapped
    weights = kernel(method, taps - x[:, None])
    u = np.zeros((n_hr, n_lr), dtype=np.float64)
    rows = np.broadcast_to(np.arange(n_hr)[:, None], taps.shape)
    if aligned:
        np.add.at(u, (rows, _wrap(taps, n_lr, padding)), weights)
    else:
        inside = (taps >= 0) & (taps < n_lr)
        np.add.at(u, (rows[inside], taps[inside]), weights[inside])
    # Normalizing makes the Gaussian a proper average and implements TF's
    # renormalization after dropping out-of-image taps (bilinear/bicubic rows
    # already sum to 1 on the periodic grid).
    total = u.sum(axis=1, keepdims=True)
    return u / np.where(total == 0.0, 1.0, total)


def upsample(
    lr,
    ratio: int,
    method: str = "bicubic",
    aligned: bool = True,
    padding: str = "periodic",
) -> np.ndarray:
    """Interpolates LR maps up by ``ratio``.

    Args:
        lr: ``[n, h, w, C]`` (or ``[h, w, C]``) LR maps.
        ratio: up-sampling ratio r.
        method: ``"gaussian"``, ``"bilinear"`` or ``"bicubic"``.
        aligned: True for the downsizer's grid (LR pixel k at HR pixel k r),
            False for the paper's misaligned ``tf.image.resize`` baseline.
        padding: ``"periodic"`` for simulated lattices, ``"reflect"`` for
            microscope images (aligned grid only).

    Returns:
        ``[n, h r, w r, C]`` float32 maps, not normalized to unit length (the
        paper scores its baselines raw; see :func:`magsr_tf.ops.spins.unit_normalize`).
    """
    lr = np.asarray(lr)
    squeeze = lr.ndim == 3
    if squeeze:
        lr = lr[None]
    if lr.ndim != 4:
        raise MagsrError(f"expected maps shaped [n, h, w, C]. Received: shape={lr.shape}")
    _, h, w, _ = lr.shape
    uy = upsample_matrix(h, ratio, method, aligned, padding)
    ux = uy if w == h else upsample_matrix(w, ratio, method, aligned, padding)
    hr = np.einsum("ik,nklc,jl->nijc", uy, lr.astype(np.float64), ux, optimize=True)
    hr = hr.astype(np.float32)
    return hr[0] if squeeze else hr


def upsample_tf(lr, ratio: int, method: str = "bicubic") -> np.ndarray:
    """The paper's baseline computed by TensorFlow itself: ``tf.image.resize`` (half-pixel).

    A reference for tests and for users who want TF's own numbers; it matches
    ``upsample(lr, ratio, method, aligned=False)`` to float32 rounding.
    TensorFlow is imported here, not at module import.
    """
    import tensorflow as tf

    lr = np.asarray(lr, dtype=np.float32)
    h, w = lr.shape[-3], lr.shape[-2]
    return tf.image.resize(lr, (h * ratio, w * ratio), method=method).numpy()
