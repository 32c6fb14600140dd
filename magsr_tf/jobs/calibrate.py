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

from magsr_tf.errors import MagsrError
from magsr_tf.inference.noise_level import write_calibration

# From this ratio on, noisy maps keep the network's SR in refine (measured, see below).
NO_NOISY_REFINE_RATIO = 16


def _read_rows(path: Path, key: str, start: int, stop: int) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return np.asarray(f[key][start:stop], dtype=np.float32)


def calibrate_noise_level(sr_model, path: Path, ratio: int, n_train: int) -> dict:
    """The model's LR residual against the noise level, on its own *training* images.

    Written to ``noise_calibration.json``: ``predict`` and ``refine`` invert it
    to estimate the noise of a user's map (:mod:`magsr_tf.inference.noise_level`).
    """
    from magsr_tf.inference.apply import apply_model, model_padding
    from magsr_tf.inference.noise_level import CALIBRATION_IMAGES, calibrate

    lr = _read_rows(path, f"lr/x{ratio}", 0, min(CALIBRATION_IMAGES, n_train))
    padding = model_padding(sr_model)
    return calibrate(lambda x: apply_model(sr_model, x, batch_size=16), lr, ratio, padding)


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
    from magsr_tf.inference.apply import apply_model, model_padding
    from magsr_tf.inference.noise_level import CALIBRATION_IMAGES
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
    calibration = calibrate_noise_level(sr_model, Path(data), ratio, n_train)
    companion = companion_dir(folder)
    if companion is not None:
        noisy_model = load_sr_model(companion)
        if model_ratio(noisy_model) != ratio:
            raise MagsrError(f"{companion} is not a x{ratio} model")
        lr = _read_rows(Path(data), f"lr/x{ratio}", 0, min(CALIBRATION_IMAGES, n_train))
        calibration["switch"] = switch_level(
            lambda x: apply_model(sr_model, x, batch_size=16),
            lambda x: apply_model(noisy_model, x, batch_size=16),
            lr,
            ratio,
            model_padding(sr_model),
        )
    ham_file = folder / "hamiltonian.json"
    if ham_file.is_file() and info.channels == 3:
        calibration["refine_policy"] = measure_refine_policy(
            load_noise_aware(folder, sr_model=sr_model, calibration=calibration),
            Path(data),
            ratio,
            str(ham_file),
        )
    return write_calibration(folder, calibration)


def measure_refine_policy(start_fn, path: Path, ratio: int, hamiltonian) -> dict:
    """The model's refine policy on noisy copies of its training images (LR only)."""
    from magsr_tf.inference.noise_switch import POLICY_IMAGES, refine_policy
    from magsr_tf.priors.refine import RefineConfig, refine

    if ratio >= NO_NOISY_REFINE_RATIO:
        # At x16 the likelihood weight kappa / (sigma^2 r^2) leaves the walls to the energy,
        # and they drift (the reason the clean refine holds the LR image exactly): measured
        # on Type II x16 at sigma 0.02 / 0.1, refine 0.0021 / 0.0060 against the network's
        # 0.0012 / 0.0051 although the LR criterion preferred refining (docs/noise.md).
        return {
            "sigma": [0.02, 0.05, 0.1],
            "kappa": [None, None, None],
            "reason": f"x{ratio}: the network's SR is kept for noisy maps",
        }
    lr = _read_rows(path, f"lr/x{ratio}", 0, POLICY_IMAGES)

    def run(x, start, sigma, kappa):
        config = RefineConfig(noise_kappa=kappa)
        return refine(x, ratio, hamiltonian, init=start, config=config, noise=sigma).sr

    return refine_policy(start_fn, run, lr, ratio)
