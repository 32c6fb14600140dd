"""The default method of ``fit-image`` (``--prior auto``), chosen from the LR image alone.

Measured on the four real images of docs/real_images.md at x2, x4 and x8 and
on synthetic labyrinths with a known truth (no HR data is read here):

- where the LR grid resolves the domains (at most
  :data:`magsr_tf.priors.image_prior.ALIASED_SIGN_CHANGES` of the LR neighbour
  pairs change sign) the physics prior (anisotropy, K from the LR image) beats
  aligned bicubic and Lanczos-3 where its K says the walls are sharp, and the
  mean of the prior and Lanczos-3 does where they are wide
  (:data:`BLEND_ANISOTROPY`); the patch network adds nothing to the prior
  (network + prior ends in the prior's minimum) and alone stays below bicubic,
  so ``auto`` does not train it (``--network`` adds it as the prior's start);
- where it does not, the prior paints domains in the wrong places, and the
  better interpolation depends on how aliased the grid is: Lanczos-3 is
  sharper and wins while domains are still about two LR pixels wide or more,
  bicubic wins once more than :data:`BICUBIC_SIGN_CHANGES` of the pairs
  change sign (synthetic labyrinths: Lanczos ahead at shares 0.517-0.597 at
  x4 and x8, bicubic ahead at 0.609 and above; docs/real_images.md).

Self-validation (degrading the LR image once more by the ratio or by 2 and
scoring each candidate against the LR image) was measured as well and does
not predict the order at the native scale on these images: see
docs/real_images.md, "Choosing the method".

The noise level (:func:`noise_level`) sets the prior's LR data weight as a
likelihood (:func:`data_weight`): weaker for noisier images.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)

METHODS = ("prior", "prior+lanczos", "lanczos", "bicubic")
"""What ``auto`` can return (the network is measured to add nothing, see above)."""
BLEND_ANISOTROPY = 0.05
"""K / J below which ``auto`` returns the mean of the prior's map and aligned
Lanczos-3. A small K from the LR image means wide walls (delta = sqrt(J / 2K) >
3.2 lattice spacings): the prior is then nearly exchange only, a smoothness
prior no sharper than interpolation, the two maps err in different places and
their mean beats both (measured: PEEM x4, K 0.009: prior r 0.9694, Lanczos
0.9703, mean 0.9711; LTEM-1 x8, K 0.006: 0.9511, 0.9509, 0.9552). With sharp
walls the prior is far ahead and the mean drags it back (MFM x4, K 0.14:
0.9903, 0.9765, mean 0.9875). docs/real_images.md, "The default method"."""
BLEND_MIN_RATIO = 4
"""The mean with Lanczos-3 only from this ratio on: at x2 (4 HR pixels per LR
sample) the prior alone was ahead of the mean on every image measured (PEEM x2:
0.9922 against 0.9916, LTEM-2 x2: 0.9454 against 0.9430)."""
BICUBIC_SIGN_CHANGES = 0.60
"""Share of LR neighbour pairs changing sign above which an unresolved image gets
bicubic rather than Lanczos-3 (see the module docstring)."""
TEMPERATURE = 30.0
"""Energy scale of the likelihood, in units of J: the data term is
``sum (A m - y)^2 / (2 sigma_y^2)`` times TEMPERATURE (:func:`data_weight`).
Measured (docs/real_images.md, "Noise"): data weights below about 300 lost r on
every image tried, with real noise too (MFM x4 with sigma = 0.05: r 0.9861 at
mu = 1000 and 300, 0.9857 at 100, 0.9832 at 30; PEEM x4: 0.9694 at 1000, 0.9683
at 100, 0.9638 at 30), and the spectral floor of a real LR image at x4 holds
texture as well (0.17 on the clean MFM image). 30 keeps the exact-consistency
limit up to sigma_y = 0.17 and weakens the data term only beyond."""


def noise_level(lr: np.ndarray, given: float | None = None) -> dict:
    """Noise sigma per component of the LR image (in the [-1, 1] units of the spin map).

    Args:
        lr: ``[h, w, C]`` LR spin map.
        given: the user's sigma (``--noise SIGMA``); None estimates it from the
            floor of the LR power spectrum (:func:`magsr_tf.ops.noise.spectral_noise`).
            On real images that floor holds texture as well as noise (the
            domains fill the LR band at x4 and above), so it is an upper bound.

    Returns:
        ``{"sigma", "method"}`` with method ``"given"`` or ``"spectral floor"``.
    """
    from magsr_tf.ops.noise import spectral_noise

    if given is not None:
        if not (math.isfinite(given) and given >= 0):
            raise MagsrError(f"noise must be a number >= 0 or 'auto'. Received: noise={given}")
        return {"sigma": float(given), "method": "given"}
    return {"sigma": float(spectral_noise(np.asarray(lr)[None])[0]), "method": "spectral floor"}


def data_weight(sigma: float, scale: float, cap: float) -> float:
    """The prior's LR data weight mu from the noise level (a Gaussian likelihood).

    ``mu = TEMPERATURE / sigma_y^2`` with ``sigma_y = sigma / scale`` the noise in
    the prior's spin units, at most ``cap`` (the exact-consistency limit for
    clean images, :data:`magsr_tf.priors.image_prior.CONSISTENCY`).
    """
    sigma_y = float(sigma) / max(float(scale), 1e-12)
    if sigma_y <= 0:
        return float(cap)
    return float(min(cap, TEMPERATURE / sigma_y**2))


def choose_method(lr: np.ndarray, ratio: int) -> dict:
    """The default method for an LR image: ``{"method", "reason", "lr_sign_changes"}``."""
    from magsr_tf.priors.image_prior import ALIASED_SIGN_CHANGES, sign_changes

    share = sign_changes(np.asarray(lr)[..., -1])
    if share <= ALIASED_SIGN_CHANGES:
        method = "prior"
        reason = (
            f"{share:.3f} of LR neighbour pairs change sign (<= {ALIASED_SIGN_CHANGES}): the "
            "LR grid resolves the domains, the physics prior"
        )
    elif share <= BICUBIC_SIGN_CHANGES:
        method = "lanczos"
        reason = (
            f"{share:.3f} of LR neighbour pairs change sign (> {ALIASED_SIGN_CHANGES}, "
            f"<= {BICUBIC_SIGN_CHANGES}): domains not resolved, aligned Lanczos-3"
        )
    else:
        method = "bicubic"
        reason = (
            f"{share:.3f} of LR neighbour pairs change sign (> {BICUBIC_SIGN_CHANGES}): "
            "domains aliased, aligned bicubic"
        )
    logger.info("fit-image default method at x%d: %s", ratio, reason)
    return {"method": method, "reason": reason, "lr_sign_changes": float(share)}


def interpolate(lr: np.ndarray, ratio: int, method: str, padding: str = "reflect") -> np.ndarray:
    """Aligned ``"bicubic"`` or ``"lanczos"`` (Lanczos-3, reflect) up-sampling of ``[h, w, C]``."""
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.ops.lanczos import lanczos

    if method == "lanczos":
        return lanczos(lr, ratio)
    if method == "bicubic":
        return upsample(lr, ratio, "bicubic", aligned=True, padding=padding)
    raise MagsrError(f"interpolation must be bicubic or lanczos. Received: {method!r}")


def blend(anisotropy: float, ratio: int) -> bool:
    """True where ``auto`` returns the mean of prior and Lanczos-3 (:data:`BLEND_ANISOTROPY`)."""
    return anisotropy < BLEND_ANISOTROPY and ratio >= BLEND_MIN_RATIO


def prior_step(
    lr: np.ndarray,
    ratio: int,
    degradation,
    prior: str,
    anisotropy: float | None = None,
    unresolved: str = "interpolate",
    init: np.ndarray | None = None,
    noise: float | None = None,
    callback=None,
) -> tuple[str, np.ndarray, dict]:
    """The prior (or, for ``prior="auto"``, the chosen method) of ``fit-image`` on one LR image.

    Args:
        lr: ``[h, w, C]`` LR spin map.
        ratio: the SR ratio.
        degradation: the blur (a :class:`magsr_tf.ops.degradation.Degradation`).
        prior: ``"auto"``, ``"anisotropy"`` or ``"exchange"``.
        anisotropy: K / J (None: from the LR image).
        unresolved: the prior's policy where the LR grid does not resolve the domains.
        init: the network's SR (the prior's start), or None (bicubic).
        noise: the LR noise sigma, or None (estimated, :func:`noise_level`).
        callback: the prior's progress callback.

    Returns:
        The map's name (``"prior"``, ``"network+prior"``, or for ``auto``
        ``"auto (prior)"``, ``"auto (network+prior)"``, ``"auto (lanczos)"``,
        ``"auto (bicubic)"``), the map, and the record written to summary.json
        (``method`` with the reason, ``noise`` with sigma, its method and the
        data weight).
    """
    from magsr_tf.priors.image_prior import (
        CONSISTENCY,
        PriorConfig,
        intensity_scale,
        reconstruct,
    )

    noise_info = noise_level(lr, noise)
    _, scale = intensity_scale(np.asarray(lr, np.float64))
    mu = data_weight(noise_info["sigma"], float(np.mean(scale)), CONSISTENCY)
    noise_info["data_weight"] = mu
    base = "network+prior" if init is not None else "prior"
    info: dict = {"prior": prior, "noise": noise_info}
    choice = None
    if prior == "auto":
        choice = choose_method(lr, ratio)
        info["default"] = choice
        prior = "anisotropy"
        if choice["method"] != "prior":
            info["method"] = choice["method"]
            info["start"] = None
            return f"auto ({choice['method']})", interpolate(lr, ratio, choice["method"]), info
    result = reconstruct(
        lr,
        ratio,
        degradation,
        PriorConfig(prior, anisotropy, consistency=mu, unresolved=unresolved),
        init=init,
        callback=callback,
    )
    info.update(
        {
            "anisotropy": result.anisotropy,
            "choice": result.choice,
            "iterations": result.iterations,
            "seconds": result.seconds,
            "lr_rms": result.lr_rms,
            "lr_sign_changes": result.sign_changes,
            "method": result.method,
            "start": "network" if init is not None else "bicubic",
        }
    )
    image = result.image
    if choice is not None and result.method == "prior" and blend(result.anisotropy, ratio):
        image = 0.5 * (image + interpolate(lr, ratio, "lanczos"))
        base = f"{base}+lanczos"
        info["method"] = "prior+lanczos"
        choice["reason"] += (
            f"; K = {result.anisotropy:.3g} < {BLEND_ANISOTROPY} (wide walls): the mean of the "
            "prior and aligned Lanczos-3"
        )
        choice["method"] = "prior+lanczos"
    name = f"auto ({base})" if choice is not None else base
    return name, image, info
