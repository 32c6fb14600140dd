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
- ``network+prior``: the prior started from the network's SR.

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

logger = logging.getLogger(__name__)

METHODS = ("bicubic", "lanczos", "prior", "network", "network+prior")
LANCZOS_A = 3
SSIM_SIGMA = 1.5
SSIM_RANGE = 2.0
"""SSIM data range: spin components span [-1, 1]."""


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

    Returns:
        One row per method (see the module docstring).

    Raises:
        MagsrError: unknown methods, an unreadable image, or a crop that does
            not fit.
    """
    from magsr_tf.evaluation.metrics import pearson
    from magsr_tf.io.pictures import images_to_spins
    from magsr_tf.jobs.fit_image import central_crop
    from magsr_tf.ops.degradation import degrade, parse_degradation
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.priors.image_prior import PriorConfig, reconstruct

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
    network_ok = ratio in RATIOS and deg.is_default
    maps, rows = {}, []

    def record(name, out, wall, cpu, extra=None):
        maps[name] = out
        rows.append(
            {
                "image": Path(image).name,
                "ratio": ratio,
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
    prior_config = PriorConfig(prior, unresolved=unresolved)
    if "prior" in methods:
        res, wall, cpu = _timed(lambda: reconstruct(lr, ratio, deg, prior_config))
        extra = {
            "anisotropy": res.anisotropy,
            "lr_sign_changes": res.sign_changes,
            "prior_method": res.method,
        }
        record("prior", res.image, wall, cpu, extra)
    want_net = {"network", "network+prior"} & set(methods)
    if want_net and not network_ok:
        logger.info("bench real: no network at ratio %d with %s", ratio, deg.name)
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
