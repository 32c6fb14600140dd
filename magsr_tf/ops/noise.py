"""The noise model of LR images, and a model-free estimate of its level.

A measured LR map is the Gaussian downsizing of the true state plus noise.
The package's model of that noise, used to augment training, to calibrate
the estimators and in the benchmarks, is the one a user's test follows:
independent Gaussian noise of standard deviation ``sigma`` per component,
after which spin vectors longer than 1 are shortened to length 1 (so that the
input check of :func:`magsr_tf.io.inputs.check_lr_values` accepts them);
single-component maps (m_z) are clipped to [-1, 1].

:func:`spectral_noise` estimates sigma from the LR map alone, from the floor
of its power spectrum: the Gaussian blur (sigma = 1 HR pixel) leaves the
highest LR frequencies nearly empty at ratio 4, so white noise dominates
there. At ratio 8 and above the blur is a tenth of an LR pixel and the
texture fills the whole band: there the estimate needs a model of the signal
(:mod:`magsr_tf.inference.noise_level`), and this one only bounds sigma from
above.
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError

# Fraction of the 2-D spectrum (lowest power first) whose mean is the noise
# floor; white noise puts sigma^2 into every frequency bin.
SPECTRAL_QUANTILE = 0.2
# Below this sigma per component an LR map counts as clean: the refine keeps
# the exact LR constraint (docs/noise.md).
CLEAN_SIGMA = 0.006


def add_noise(lr: np.ndarray, sigma, rng: np.random.Generator) -> np.ndarray:
    """LR maps ``[n, h, w, C]`` plus Gaussian noise of ``sigma`` per component.

    Args:
        lr: ``[n, h, w, C]`` (or ``[h, w, C]``) maps, C = 3 (spins) or 1 (m_z).
        sigma: a scalar or one value per image ``[n]``.
        rng: the random generator (explicit, never global).

    Returns:
        float32 maps of the same shape: vectors longer than 1 shortened to 1
        (3 components), values clipped to [-1, 1] (1 component).
    """
    x = np.asarray(lr, dtype=np.float32)
    single = x.ndim == 3
    if single:
        x = x[None]
    sigma = np.asarray(sigma, dtype=np.float32)
    if np.any(sigma < 0) or not np.all(np.isfinite(sigma)):
        raise MagsrError(f"noise sigma must be finite and >= 0. Received: {sigma}")
    sigma = np.broadcast_to(sigma.reshape(-1, 1, 1, 1) if sigma.ndim else sigma, (len(x), 1, 1, 1))
    y = x + sigma * rng.standard_normal(x.shape, dtype=np.float32)
    y = shorten(y)
    return y[0] if single else y


def shorten(x: np.ndarray) -> np.ndarray:
    """Vectors longer than 1 scaled to length 1 (C = 3); values clipped to [-1, 1] (C = 1)."""
    if x.shape[-1] == 1:
        return np.clip(x, -1.0, 1.0).astype(np.float32)
    length = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    return (x / np.maximum(length, 1.0)).astype(np.float32)


def spectral_noise(lr: np.ndarray) -> np.ndarray:
    """Per-image noise level from the floor of the LR power spectrum.

    The mean over components of the lowest :data:`SPECTRAL_QUANTILE` of the
    periodogram |FFT|^2 / (h w), which is sigma^2 for white noise, corrected
    for the quantile's bias (for white noise each bin's power is exponentially
    distributed, so the mean of its lowest fraction q is sigma^2 times
    1 + (1 - q) ln(1 - q) / q).

    Args:
        lr: ``[n, h, w, C]`` LR maps.

    Returns:
        ``[n]`` float64 estimates of sigma per component. On clean maps this is
        the floor the texture itself leaves (measured in docs/noise.md).
    """
    x = np.asarray(lr, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or min(x.shape[1:3]) < 4:
        raise MagsrError(f"expected LR maps [n, h, w, C] of at least 4x4. Received: {x.shape}")
    n, h, w, c = x.shape
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2 / (h * w)
    power = power.reshape(n, h * w, c)
    k = max(1, int(SPECTRAL_QUANTILE * h * w))
    floor = np.sort(power, axis=1)[:, :k].mean(axis=1).mean(axis=1)
    q = k / (h * w)
    bias = 1.0 + (1.0 - q) * np.log1p(-q) / q if q < 1 else 1.0
    return np.sqrt(floor / bias)
