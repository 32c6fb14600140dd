"""Aligned Lanczos-3 up-sampling (LR pixel k on HR pixel k r, reflect padding).

The sharper of the two interpolation baselines of real images (bicubic is in
:mod:`magsr_tf.ops.interpolation`); ``fit-image`` falls back to one of them
where the LR grid does not resolve the domains (:mod:`magsr_tf.jobs.method_choice`).
"""

from __future__ import annotations

import numpy as np

LANCZOS_A = 3


def lanczos_matrix(n_lr: int, ratio: int, a: int = LANCZOS_A) -> np.ndarray:
    """Aligned Lanczos-a up-sampling ``[n_lr r, n_lr]`` (LR pixel k on HR pixel k r), reflect."""
    x = np.arange(n_lr * ratio) / ratio
    taps = np.floor(x)[:, None].astype(int) + np.arange(-a + 1, a + 1)[None, :]
    d = taps - x[:, None]
    weights = np.sinc(d) * np.sinc(d / a) * (np.abs(d) < a)
    period = 2 * (n_lr - 1) if n_lr > 1 else 1
    j = np.mod(taps, period)
    cols = np.where(j < n_lr, j, period - j) if n_lr > 1 else np.zeros_like(taps)
    u = np.zeros((n_lr * ratio, n_lr))
    np.add.at(u, (np.broadcast_to(np.arange(u.shape[0])[:, None], cols.shape), cols), weights)
    return u / u.sum(axis=1, keepdims=True)


def lanczos(lr: np.ndarray, ratio: int) -> np.ndarray:
    """Aligned Lanczos-3 up-sampling of ``[h, w, C]``."""
    uy = lanczos_matrix(lr.shape[0], ratio)
    ux = lanczos_matrix(lr.shape[1], ratio)
    hr = np.einsum("ik,klc,jl->ijc", uy, np.asarray(lr, np.float64), ux, optimize=True)
    return hr.astype(np.float32)
