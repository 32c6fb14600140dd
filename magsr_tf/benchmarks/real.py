"""Real-image benchmark: every method against a native microscope image.

``magsr-tf bench real IMAGE --ratio 4`` takes a (central crop of a) native
image as the truth, degrades it by the ratio (the package's Gaussian sigma = 1
with reflect padding, or ``--degradation``), and super-resolves the LR image
alone with each method:

- ``bicubic``: aligned bicubic up-sampling (:mod:`magsr_tf.ops.interpolation`, the bar);
- ``lanczos``: aligned Lanczos-3 up-sampling (same grid and reflect padding);
- ``prior``: the physics-prior reconstruction (:mod:`magsr_tf.priors.image_prior`,
  K chosen from the LR image), started from bicubic;
- ``network``: the patch-trained SR network of ``fit-image`` (ratios 4, 8, 16);
- ``network+prior``: the prior started from the network's SR;
- ``default``: what ``fit-image`` does by default (``--prior auto``,
  :mod:`magsr_tf.jobs.method_choice`): the method chosen from the LR image
  alone, the noise level estimated from it (``default_method`` says which).

``noise`` adds Gaussian noise of that sigma (of the [-1, 1] range, clipped) to
the LR image (:func:`magsr_tf.ops.noise.add_noise`, seed ``seed``); every
method then sees the noisy LR image (the network rows are skipped).

Each row has Pearson r, MSE and SSIM against the native image, the wall and
CPU seconds of the method, and ``r_minus_bicubic`` / ``mse_vs_bicubic`` (ratios
to the bicubic row of the same run). Nothing here is tuned on the native
image: it is read only for the scores.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.ops.kernels import RATIOS
from magsr_tf.ops.lanczos import lanczos

logger = logging.getLogger(__name__)

METHODS = ("bicubic", "lanczos", "prior", "network", "network+prior", "default")
SSIM_SIGMA = 1.5
SSIM_RANGE = 2.0
"""SSIM data range: spin components span [-1, 1]."""


def ssim(truth: np.ndarray, pred: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window sigma 1.5, data range 2), channels pooled."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * SSIM_RANGE) ** 2, (0.03 * SSIM_RANGE) ** 2
    values = []
    for c in range(truth.shape[-1]):
        x = np.asarray(truth[..., c], np.float64)
        y = np.asarray(pred[..., c], np.float64)

        def blur(z):
            return gaussian_filter(z, SSIM_SIGMA, mode="reflect", truncate=3.5)

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _default_row(lr, ratio, deg, maps, rows, prior_config):
    """``fit-image``'s default on the LR image: (map, wall s, CPU s, extra columns).

    Where it chooses the prior with the prior row's data weight, that row's map
    (the same reconstruction) is reused instead of being computed twice.
    """
    from magsr_tf.jobs.method_choice import (
        blend,
        choose_method,
        data_weight,
        interpolate,
        noise_level,
        prior_step,
    )
    from magsr_tf.priors.image_prior import CONSISTENCY, intensity_scale

    (choice, noise), wall, cpu = _timed(lambda: (choose_method(lr, ratio), noise_level(lr)))
    mu = data_weight(noise["sigma"], float(np.mean(intensity_scale(lr)[1])), CONSISTENCY)
    extra = {
        "default_method": choice["method"],
        "noise_estimate": noise["sigma"],
        "data_weight": mu,
    }
    prior_row = next((row for row in rows if row["method"] == "prior"), None)
    reuse = (
        choice["method"] == "prior"
        and prior_row is not None
        and prior_config == type(prior_config)("anisotropy", consistency=mu)
    )
    if reuse:
        image = maps["prior"]
        if blend(prior_row["anisotropy"], ratio):
            image = 0.5 * (image + interpolate(lr, ratio, "lanczos"))
            extra["default_method"] = "prior+lanczos"
        return image, prior_row["seconds"] + wall, prior_row["cpu_seconds"] + cpu, extra
    (_, image, info), wall, cpu = _timed(lambda: prior_step(lr, ratio, deg, "auto"))
    extra["default_method"] = info["method"]
    return image, wall, cpu, extra


def bench_real(
    image: str | Path,
    ratio: int = 4,
    crop: tuple[int, int] | None = (512, 512),
    methods: tuple[str, ...] = METHODS,
    degradation: str = "gaussian:1",
    prior: str = "anisotropy",
    patches: int = 4000,
    epochs: int = 3,
    seed: int = 0,
    progress: Callable[[dict], None] | None = None,
    unresolved: str = "interpolate",
    noise: float = 0.0,
) -> list[dict]:
    """Scores every method on one native image degraded by ``ratio``.

    Args:
        image: the native image (one component).
        ratio: the down-sizing ratio (any integer >= 2; the network needs 4, 8 or 16).
        crop: central crop ``(height, width)`` of the native image; None: the
            whole image cut to multiples of the ratio.
        methods: subset of :data:`METHODS`; network methods are skipped
            (with a log line) where the ratio does not suit the network.
        degradation: the blur of the degradation (and of the prior's model).
        prior: ``"anisotropy"`` or ``"exchange"``.
        patches: network training patches (16x16).
        epochs: network training epochs.
        seed: network seed.
        progress: training/prior progress callback.
        unresolved: the prior's policy where the LR grid does not resolve the
            domains (:class:`magsr_tf.priors.image_prior.PriorConfig`); the rows say
            which method ran (``prior_method``).
        noise: sigma of the Gaussian noise added to the LR image (0: none).

    Returns:
        One row per method (see the module docstring).

    Raises:
        MagsrError: unknown methods, an unreadable image, or a crop that does
            not fit.
    """
    from magsr_tf.evaluation.metrics import pearson
    from magsr_tf.io.pictures import images_to_spins
    from magsr_tf.jobs.fit_image import central_crop
    from magsr_tf.jobs.method_choice import data_weight, noise_level
    from magsr_tf.ops.degradation import degrade, parse_degradation
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.priors.image_prior import CONSISTENCY, PriorConfig, intensity_scale, reconstruct

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise MagsrError(f"methods must be among {METHODS}. Received: {unknown}")
    if int(ratio) != ratio or ratio < 2:
        raise MagsrError(f"ratio must be an integer >= 2. Received: ratio={ratio}")
    deg = parse_degradation(degradation)
    native = images_to_spins([Path(image)])
    if crop is None:
        h, w = native.shape[:2]
        crop = (h - h % ratio, w - w % ratio)
    native = central_crop(native, crop)
    if native.shape[0] % ratio or native.shape[1] % ratio:
        raise MagsrError(f"the crop {crop} is not divisible by the ratio {ratio}")
    if min(native.shape[:2]) // ratio < 4:
        raise MagsrError(f"the crop {crop} is too small for ratio {ratio}")
    lr = degrade(native, ratio, deg, "reflect")
    if noise:
        from magsr_tf.ops.noise import add_noise

        lr = add_noise(lr, noise, np.random.default_rng(seed))
    network_ok = ratio in RATIOS and deg.is_default and not noise
    maps, rows = {}, []

    def record(name, out, wall, cpu, extra=None):
        maps[name] = out
        rows.append(
            {
                "image": Path(image).name,
                "ratio": ratio,
                "noise": noise,
                "method": name,
                "pearson_r": pearson(native, out),
                "mse": float(np.mean((native - out) ** 2)),
                "ssim": ssim(native, out),
                "seconds": wall,
                "cpu_seconds": cpu,
                **(extra or {}),
            }
        )

    out, wall, cpu = _timed(lambda: upsample(lr, ratio, "bicubic", True, "reflect"))
    record("bicubic", out, wall, cpu)
    if "lanczos" in methods:
        record("lanczos", *_timed(lambda: lanczos(lr, ratio)))
    # The prior's LR data weight from the noise level, as in fit-image.
    sigma = noise_level(lr)["sigma"]
    mu = data_weight(sigma, float(np.mean(intensity_scale(lr)[1])), CONSISTENCY)
    prior_config = PriorConfig(prior, consistency=mu, unresolved=unresolved)
    if "prior" in methods:
        res, wall, cpu = _timed(lambda: reconstruct(lr, ratio, deg, prior_config))
        extra = {
            "anisotropy": res.anisotropy,
            "lr_sign_changes": res.sign_changes,
            "prior_method": res.method,
        }
        record("prior", res.image, wall, cpu, extra)
    if "default" in methods:
        record("default", *_default_row(lr, ratio, deg, maps, rows, prior_config))
    want_net = {"network", "network+prior"} & set(methods)
    if want_net and not network_ok:
        logger.info("bench real: no network at ratio %d with %s (or noise)", ratio, deg.name)
    elif want_net:
        from magsr_tf.jobs.fit_image import FitImageConfig, fit_image

        with tempfile.TemporaryDirectory() as tmp:
            config = FitImageConfig(
                images=(Path(image),),
                ratio=ratio,
                patch=min(16, min(lr.shape[:2])),
                patches=patches,
                epochs=epochs,
                seed=seed,
                degrade=True,
                crop=tuple(native.shape[:2]),
                out_dir=Path(tmp) / "model",
                prior="none",
                network=True,
            )
            result, wall, cpu = _timed(lambda: fit_image(config, progress=progress))
        record("network", result.sr, wall, cpu)
        if "network+prior" in methods:
            res, wall2, cpu2 = _timed(
                lambda: reconstruct(lr, ratio, deg, prior_config, init=result.sr)
            )
            extra = {"prior_method": res.method}
            record("network+prior", res.image, wall + wall2, cpu + cpu2, extra)
    bicubic = rows[0]
    for row in rows:
        row["r_minus_bicubic"] = row["pearson_r"] - bicubic["pearson_r"]
        row["mse_vs_bicubic"] = row["mse"] / bicubic["mse"]
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: order[r["method"]])
