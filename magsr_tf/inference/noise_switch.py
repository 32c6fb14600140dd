"""Clean and noisy LR through one model name: the shipped network and its noise-robust companion.

A single network trained on a mixture of clean and noisy LR images
(:mod:`magsr_tf.training.train`, ``fit --noise``) denoises, but it cannot
tell a clean input from a slightly noisy one and smooths both: Type II x4
rose from MSE 1.2e-6 to 5e-5 on clean maps (docs/noise.md). So a model folder
keeps its clean network and may hold a noise-robust companion in
``MODEL/noisy/`` (``model.keras`` and a SavedModel ``noisy/1``). Each LR map
goes through the clean network first; its LR residual gives the noise level
(:mod:`magsr_tf.inference.noise_level`), and maps at or above the model's
``switch_sigma`` are super-resolved again by the companion.

``switch_sigma`` is measured on the model's *training* LR images, LR data
only: the noise level above which the companion's SR, downsized, is closer to
the clean LR image than the clean network's (:func:`switch_level`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.inference.noise_level import (
    NoiseEstimate,
    estimate_noise,
    read_calibration,
)
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.noise import add_noise

COMPANION = "noisy"
SWITCH_SEED = 31337


def companion_dir(model_dir: str | Path) -> Path | None:
    """``MODEL/noisy`` if the model folder holds a noise-robust companion, else None."""
    folder = Path(model_dir)
    folder = folder if folder.is_dir() else folder.parent
    candidate = folder / COMPANION
    return candidate if (candidate / "model.keras").is_file() else None


def switch_level(
    clean_fn: Callable[[np.ndarray], np.ndarray],
    noisy_fn: Callable[[np.ndarray], np.ndarray],
    lr_clean: np.ndarray,
    ratio: int,
    padding: str = "periodic",
    sigmas=(0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05),
    seed: int = SWITCH_SEED,
) -> dict:
    """The lowest noise level at which the companion beats the clean network, in LR terms.

    For each sigma the training LR images get noise; both networks super-resolve
    them and the LR error ``mean((Down(SR) - LR_clean)^2)`` of each is compared.
    No HR image is read.

    Returns:
        ``{"switch_sigma", "sigma": [...], "clean_lr_error": [...], "noisy_lr_error": [...]}``.
    """
    rng = np.random.default_rng(seed)
    clean_err, noisy_err = [], []
    for sigma in sigmas:
        x = add_noise(lr_clean, sigma, rng) if sigma > 0 else np.asarray(lr_clean, np.float32)
        for fn, errors in ((clean_fn, clean_err), (noisy_fn, noisy_err)):
            down = downsample(np.asarray(fn(x)), ratio, padding)
            errors.append(float(np.mean((down - lr_clean) ** 2)))
    # Switch at the first level from which the companion stays better (None: never).
    switch = None
    for i, sigma in enumerate(sigmas):
        if all(noisy_err[j] < clean_err[j] for j in range(i, len(sigmas))):
            switch = float(sigma)
            break
    return {
        "switch_sigma": switch,
        "sigma": [float(s) for s in sigmas],
        "clean_lr_error": clean_err,
        "noisy_lr_error": noisy_err,
    }


def switch_sigma(calibration: dict | None) -> float | None:
    """The noise level from which a calibration hands maps to the companion (None: never)."""
    return ((calibration or {}).get("switch") or {}).get("switch_sigma")


class NoiseAwareSR:
    """SR of LR batches by the clean network or, for noisy maps, its companion.

    Args:
        clean: the clean network, ``lr -> sr`` (a Keras model's apply function).
        noisy: the companion, or None.
        calibration: the clean network's ``noise_calibration.json`` (None: no switching).
        ratio: the ratio.
        padding: the downsizing padding of the residual.
        boundary: "open" runs both networks on windows extended by a continuation
            of their texture (:class:`magsr_tf.ops.windows.OpenBoundary`) and
            leaves the window's rim out of the noise residual.

    After a call, :attr:`estimate` holds the noise levels of the last batch and
    :attr:`used_companion` which maps the companion produced.
    """

    def __init__(
        self,
        clean,
        noisy,
        calibration: dict | None,
        ratio: int,
        padding="periodic",
        boundary: str = "periodic",
    ):
        from magsr_tf.ops.windows import OpenBoundary, check_boundary

        self.boundary = check_boundary(boundary, allow_none=False)
        self._periodic = (clean, noisy, padding)
        if boundary == "open" and padding != "reflect":  # reflect-padded: open already
            clean = OpenBoundary(clean, ratio)
            noisy = None if noisy is None else OpenBoundary(noisy, ratio)
            padding = "reflect"
        self.clean, self.noisy, self.calibration = clean, noisy, calibration
        self.ratio, self.padding = ratio, padding
        self.rim = 1 if boundary == "open" else 0
        self.estimate: NoiseEstimate | None = None
        self.used_companion = np.zeros(0, bool)

    def with_boundary(self, boundary: str) -> NoiseAwareSR:
        """The same networks and calibration for another boundary."""
        clean, noisy, padding = self._periodic
        return NoiseAwareSR(clean, noisy, self.calibration, self.ratio, padding, boundary)

    @property
    def switch_sigma(self) -> float | None:
        return None if self.noisy is None else switch_sigma(self.calibration)

    def refine_kappa(self, sigma, default: float):
        """kappa per map from the model's measured refine policy (None: no policy)."""
        policy = (self.calibration or {}).get("refine_policy")
        return policy_kappa(policy, sigma, default) if policy else None

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        sr = np.asarray(self.clean(lr), dtype=np.float32)
        self.used_companion = np.zeros(len(lr), bool)
        if self.calibration is None:
            self.estimate = None
            return sr
        self.estimate = estimate_noise(lr, self.ratio, sr, self.calibration, self.padding, self.rim)
        switch = self.switch_sigma
        if switch is not None:
            self.used_companion = self.estimate.sigma >= switch
            if self.used_companion.any():
                sr = sr.copy()
                sr[self.used_companion] = np.asarray(self.noisy(lr[self.used_companion]))
        return sr


def load_noise_aware(
    model_dir: str | Path,
    sr_model=None,
    batch_size: int = 16,
    calibration: dict | None = None,
    boundary: str = "periodic",
) -> NoiseAwareSR:
    """The :class:`NoiseAwareSR` of a model folder (its clean network, companion, calibration;
    ``calibration`` replaces the folder's ``noise_calibration.json``) for ``boundary``."""
    from magsr_tf.inference.apply import apply_model, model_padding
    from magsr_tf.nn.model import load_sr_model, model_ratio

    folder = Path(model_dir)
    folder = folder if folder.is_dir() else folder.parent
    sr_model = sr_model if sr_model is not None else load_sr_model(folder)
    companion = companion_dir(folder)
    noisy_model = load_sr_model(companion) if companion is not None else None

    def clean(x):
        return apply_model(sr_model, x, batch_size=batch_size)

    noisy = None
    if noisy_model is not None:

        def noisy(x):
            return apply_model(noisy_model, x, batch_size=batch_size)

    calibration = calibration if calibration is not None else read_calibration(folder)
    ratio, padding = model_ratio(sr_model), model_padding(sr_model)
    return NoiseAwareSR(clean, noisy, calibration, ratio, padding, boundary)


POLICY_SIGMAS = (0.02, 0.05, 0.1)
POLICY_KAPPAS = (0.012, 0.05)
POLICY_IMAGES = 6


def refine_policy(
    start_fn: Callable[[np.ndarray], np.ndarray],
    refine_fn: Callable[[np.ndarray, np.ndarray, float, float], np.ndarray],
    lr_clean: np.ndarray,
    ratio: int,
    padding: str = "periodic",
    sigmas=POLICY_SIGMAS,
    kappas=POLICY_KAPPAS,
    seed: int = SWITCH_SEED,
) -> dict:
    """Per noise level, the refine weight kappa that best recovers the clean LR image.

    On training LR images with added noise, the network's SR (``start_fn``) and
    the refines from it at each kappa (``refine_fn(lr, start, sigma, kappa)``)
    are downsized and compared with the clean LR image; "keep" (kappa None)
    means the network's SR itself was closest, and refine returns it unchanged
    at that noise level. LR data only. Measured: the choice follows the HR
    error (docs/noise.md).

    Returns:
        ``{"sigma": [...], "kappa": [kappa or None per sigma], "lr_error": {...}}``.
    """
    rng = np.random.default_rng(seed)
    chosen, errors = [], {}
    for sigma in sigmas:
        x = add_noise(lr_clean, sigma, rng)
        start = np.asarray(start_fn(x), dtype=np.float32)
        candidates = {"keep": start}
        for kappa in kappas:
            candidates[f"{kappa:g}"] = refine_fn(x, start, sigma, kappa)
        err = {
            name: float(np.mean((downsample(sr, ratio, padding) - lr_clean) ** 2))
            for name, sr in candidates.items()
        }
        best = min(err, key=err.get)
        chosen.append(None if best == "keep" else float(best))
        errors[f"{sigma:g}"] = err
    return {"sigma": [float(s) for s in sigmas], "kappa": chosen, "lr_error": errors}


def policy_kappa(policy: dict | None, sigma: np.ndarray, default: float) -> np.ndarray:
    """kappa per image from a :func:`refine_policy` (NaN: keep the network's SR).

    The nearest calibrated level in log sigma decides; without a policy every
    image gets ``default``.
    """
    sigma = np.atleast_1d(np.asarray(sigma, dtype=np.float64))
    if not policy:
        return np.full(sigma.shape, float(default))
    levels = np.log(np.asarray(policy["sigma"], dtype=np.float64))
    nearest = np.abs(np.log(np.maximum(sigma, 1e-6))[:, None] - levels[None]).argmin(axis=1)
    kappas = np.array([np.nan if k is None else k for k in policy["kappa"]], dtype=np.float64)
    return kappas[nearest]
