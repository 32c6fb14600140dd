"""``magsr-tf calibrate-noise MODEL --data PATH.h5``: what a model needs to handle noisy LR.

On the model's *training* LR images with added noise (LR data only): the LR
residual against the noise level (how ``predict`` and ``refine`` estimate the
noise of a map), the level from which the noise-robust companion in
``MODEL/noisy`` takes over, and the refine policy per noise level
(docs/noise.md). ``fit`` writes the residual curve itself at its end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from magsr_tf.data.format import read_rows
from magsr_tf.errors import MagsrError
from magsr_tf.inference.noise_level import write_calibration

# From this ratio on, noisy maps keep the network's SR in refine (measured, see below).
NO_NOISY_REFINE_RATIO = 16


def training_lr(path: Path, ratio: int, n_train: int) -> np.ndarray:
    """The first :data:`~magsr_tf.inference.noise_level.CALIBRATION_IMAGES` training LR images."""
    from magsr_tf.inference.noise_level import CALIBRATION_IMAGES

    return read_rows(path, f"lr/x{ratio}", 0, min(CALIBRATION_IMAGES, n_train))


def _apply(sr_model):
    from magsr_tf.inference.apply import apply_model

    return lambda x: apply_model(sr_model, x, batch_size=16)


def calibrate_noise_level(sr_model, lr: np.ndarray) -> dict:
    """The model's LR residual against the noise level on training LR images ``lr``.

    Written to ``noise_calibration.json``: ``predict`` and ``refine`` invert it
    to estimate the noise of a user's map (:mod:`magsr_tf.inference.noise_level`).
    """
    from magsr_tf.inference.apply import model_padding
    from magsr_tf.inference.noise_level import calibrate
    from magsr_tf.nn.model import model_ratio

    return calibrate(_apply(sr_model), lr, model_ratio(sr_model), model_padding(sr_model))


def calibrate_model(model: str | Path, data: str | Path) -> Path:
    """Writes ``noise_calibration.json`` for a trained model folder from a dataset's
    training rows (what ``fit`` does at its end; for models trained before it did).

    With a noise-robust companion in ``MODEL/noisy`` it also measures the noise
    level from which the companion takes over (``switch``;
    :func:`magsr_tf.inference.noise_switch.switch_level`).

    Returns:
        The written file.
    """
    from magsr_tf.data.format import check_ratio, open_info
    from magsr_tf.inference.apply import model_padding
    from magsr_tf.inference.noise_switch import companion_dir, load_noise_aware, switch_level
    from magsr_tf.nn.model import load_sr_model, model_ratio

    folder = Path(model)
    if not folder.is_dir():
        raise MagsrError(f"no model folder {folder}")
    sr_model = load_sr_model(folder)
    ratio = model_ratio(sr_model)
    info = open_info(Path(data))
    check_ratio(info, ratio)
    n_train = info.n - info.n_test
    if n_train < 1:
        raise MagsrError(f"{data} has no training rows to calibrate with")
    lr = training_lr(Path(data), ratio, n_train)
    calibration = calibrate_noise_level(sr_model, lr)
    companion = companion_dir(folder)
    if companion is not None:
        noisy_model = load_sr_model(companion)
        if model_ratio(noisy_model) != ratio:
            raise MagsrError(f"{companion} is not a x{ratio} model")
        calibration["switch"] = switch_level(
            _apply(sr_model), _apply(noisy_model), lr, ratio, model_padding(sr_model)
        )
    ham_file = folder / "hamiltonian.json"
    if ham_file.is_file() and info.channels == 3:
        calibration["refine_policy"] = measure_refine_policy(
            load_noise_aware(folder, sr_model=sr_model, calibration=calibration),
            lr,
            ratio,
            str(ham_file),
        )
    return write_calibration(folder, calibration)


def measure_refine_policy(start_fn, lr: np.ndarray, ratio: int, hamiltonian) -> dict:
    """The model's refine policy on noisy copies of the first
    :data:`~magsr_tf.inference.noise_switch.POLICY_IMAGES` training LR images ``lr``."""
    from magsr_tf.inference.noise_switch import POLICY_IMAGES, POLICY_SIGMAS, refine_policy
    from magsr_tf.priors.refine import RefineConfig, refine

    if ratio >= NO_NOISY_REFINE_RATIO:
        # At x16 the likelihood weight kappa / (sigma^2 r^2) leaves the walls to the energy,
        # and they drift (the reason the clean refine holds the LR image exactly): measured
        # on Type II x16 at sigma 0.02 / 0.1, refine 0.0021 / 0.0060 against the network's
        # 0.0012 / 0.0051 although the LR criterion preferred refining (docs/noise.md).
        return {
            "sigma": list(POLICY_SIGMAS),
            "kappa": [None] * len(POLICY_SIGMAS),
            "reason": f"x{ratio}: the network's SR is kept for noisy maps",
        }
    lr = lr[:POLICY_IMAGES]

    def run(x, start, sigma, kappa):
        config = RefineConfig(noise_kappa=kappa)
        return refine(x, ratio, hamiltonian, init=start, config=config, noise=sigma).sr

    return refine_policy(start_fn, run, lr, ratio)
