"""The noise level of an LR map, estimated from the map alone with the network's help.

The SR network is trained to return an SR map whose downsizing is the *clean*
LR image (noise augmentation, :mod:`magsr_tf.training.train`), so the LR
residual ``LR - Down(SR(LR))`` of a noisy input is mostly its noise. Its RMS
is a monotone function of sigma, below sigma itself (the network keeps a
little of the noise, and vectors longer than 1 were shortened), which each
model measures once on its own *training* LR images with added noise
(:func:`calibrate`, written to ``noise_calibration.json`` by ``fit``) and
inverts at prediction time (:func:`sigma_from_residual`). Unlike the floor of
the power spectrum (:func:`magsr_tf.ops.noise.spectral_noise`) this works at
ratio 8 and 16, where the texture fills the whole LR band. Accuracy: see
docs/noise.md.

Noise levels are per component, in units of the spin length (or of m_z).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import write_json
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.noise import add_noise, spectral_noise

CALIBRATION_FILE = "noise_calibration.json"
CALIBRATION_SIGMAS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2)
CALIBRATION_IMAGES = 48
CALIBRATION_SEED = 20231


@dataclass(frozen=True)
class NoiseEstimate:
    """Per-image noise level of LR maps.

    Attributes:
        sigma: ``[n]`` noise standard deviation per component.
        method: "given" (the user's value), "network residual" or "spectral floor".
    """

    sigma: np.ndarray
    method: str

    def to_dict(self) -> dict:
        return {
            "sigma": [float(s) for s in self.sigma],
            "sigma_mean": float(np.mean(self.sigma)),
            "method": self.method,
        }


def lr_residual(
    lr: np.ndarray, sr: np.ndarray, ratio: int, padding: str = "periodic", rim: int = 0
):
    """Per-image RMS over pixels and components of ``LR - Down(SR)``: ``[n]`` float64.

    ``rim`` LR pixels at each edge are left out (an open window: the downsizing
    of its border pixels reaches beyond the SR).
    """
    lr = np.asarray(lr, dtype=np.float32)
    if lr.ndim == 3:
        lr, sr = lr[None], np.asarray(sr)[None]
    out = np.empty(len(lr))
    for i in range(len(lr)):  # one map at a time: SR batches can be large (memory-mapped)
        down = downsample(np.asarray(sr[i], dtype=np.float32)[None], ratio, padding)
        diff = lr[i] - down[0]
        if rim:
            diff = diff[rim:-rim, rim:-rim]
        out[i] = float(np.sqrt(np.mean(diff**2, dtype=np.float64)))
    return out


def calibrate(
    sr_fn: Callable[[np.ndarray], np.ndarray],
    lr_clean: np.ndarray,
    ratio: int,
    padding: str = "periodic",
    sigmas=CALIBRATION_SIGMAS,
    seed: int = CALIBRATION_SEED,
) -> dict:
    """Measures the residual RMS of ``sr_fn`` against sigma on clean LR maps.

    Args:
        sr_fn: LR batch -> SR batch (e.g. the trained model).
        lr_clean: ``[n, h, w, C]`` clean LR maps (training images, never the test split).
        ratio: the model's ratio.
        padding: padding of the downsizing (the model's).
        sigmas: noise levels to measure.
        seed: seed of the added noise.

    Returns:
        ``{"sigma": [...], "residual": [...], "images": n, "ratio": r}``: the
        median residual RMS at each sigma (non-decreasing, as inversion needs).
    """
    rng = np.random.default_rng(seed)
    residual = []
    for sigma in sigmas:
        noisy = add_noise(lr_clean, sigma, rng) if sigma > 0 else np.asarray(lr_clean, np.float32)
        sr = sr_fn(noisy)
        residual.append(float(np.median(lr_residual(noisy, sr, ratio, padding))))
    residual = np.maximum.accumulate(residual)  # round-off can dip at the clean end
    return {
        "sigma": [float(s) for s in sigmas],
        "residual": [float(r) for r in residual],
        "images": int(len(lr_clean)),
        "ratio": int(ratio),
        "padding": padding,
        "noise_model": "Gaussian per component, vectors longer than 1 shortened to 1",
    }


def sigma_from_residual(residual, calibration: dict) -> np.ndarray:
    """Inverts a calibration: residual RMS ``[n]`` -> sigma ``[n]``.

    Residuals at or below the clean floor give 0; above the last calibrated
    level the curve is extended with its last slope.
    """
    s = np.asarray(calibration["sigma"], dtype=np.float64)
    r = np.asarray(calibration["residual"], dtype=np.float64)
    residual = np.atleast_1d(np.asarray(residual, dtype=np.float64))
    keep = np.concatenate([[True], np.diff(r) > 0])  # strictly increasing for interp
    s, r = s[keep], r[keep]
    if len(r) < 2:
        raise MagsrError("the noise calibration is flat: the network copies its input noise")
    out = np.interp(residual, r, s)
    slope = (s[-1] - s[-2]) / (r[-1] - r[-2])
    high = residual > r[-1]
    out[high] = s[-1] + slope * (residual[high] - r[-1])
    return np.maximum(out, 0.0)


def read_calibration(model_dir: str | Path | None) -> dict | None:
    """The model folder's ``noise_calibration.json``, or None if it has none."""
    if model_dir is None:
        return None
    path = Path(model_dir)
    path = path if path.is_dir() else path.parent
    file = path / CALIBRATION_FILE
    if not file.is_file():
        return None
    try:
        calibration = json.loads(file.read_text())
        if len(calibration["sigma"]) != len(calibration["residual"]):
            raise ValueError("sigma and residual differ in length")
    except (ValueError, KeyError, TypeError) as err:
        raise MagsrError(f"{file} is not a noise calibration: {err}") from None
    return calibration


def write_calibration(model_dir: str | Path, calibration: dict) -> Path:
    """Writes ``noise_calibration.json`` into the model folder (atomically)."""
    path = Path(model_dir) / CALIBRATION_FILE
    write_json(path, calibration, indent=1)
    return path


def estimate_noise(
    lr: np.ndarray,
    ratio: int,
    sr: np.ndarray | None = None,
    calibration: dict | None = None,
    padding: str = "periodic",
    rim: int = 0,
) -> NoiseEstimate:
    """Per-image noise level of LR maps ``[n, h, w, C]`` from the maps alone.

    ``rim``: LR pixels at each edge left out of the network residual (1 for an
    open window, whose border the downsizing of the SR cannot reproduce).

    With a network's SR of them and that network's calibration, the inverted
    LR residual ("network residual"); otherwise the power-spectrum floor
    ("spectral floor", reliable at ratio 4 only: see docs/noise.md).
    """
    lr = np.asarray(lr)
    if lr.ndim == 3:
        lr = lr[None]
    if sr is not None and calibration is not None:
        residual = lr_residual(lr, sr, ratio, padding, rim)
        return NoiseEstimate(sigma_from_residual(residual, calibration), "network residual")
    return NoiseEstimate(spectral_noise(lr), "spectral floor")


def parse_noise(text: str | float | None) -> float | None:
    """``--noise``: "auto" (None: estimate) or a sigma >= 0."""
    if text is None:
        return None
    if isinstance(text, str):
        if text.strip().lower() == "auto":
            return None
        try:
            value = float(text)
        except ValueError:
            raise MagsrError(f"--noise must be 'auto' or a number. Received: {text!r}") from None
    else:
        value = float(text)
    if not (np.isfinite(value) and 0 <= value <= 1):
        raise MagsrError(f"--noise must be 'auto' or a sigma in [0, 1]. Received: {text!r}")
    return value
