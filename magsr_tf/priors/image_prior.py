"""Real-image reconstruction under a physics prior (no learning).

A microscope image is read as one component (m_z) or three components of a
field of unit spins. Its super-resolved version is the spin field of the
lowest lattice energy whose degraded image reproduces the LR image:

    minimize  (mu / 2) sum_c |A(m_c) - y_c|^2
              + J sum_<ij> (1 - m_i . m_j)          (exchange, open boundaries)
              + K sum_i (1 - m_iz^2)                (easy-axis anisotropy)

over unit spins m, with A the degradation (:mod:`magsr_tf.ops.degradation`: blur
and stride r, reflect padding) and y the LR image mapped onto [-1, 1] by an
intensity offset and scale estimated from the LR image (robust percentiles:
the domains' plateaus are +-1). J = 1 sets the energy unit; mu = 1000 makes
consistency with the LR image nearly exact. One image (m_z) has spins in the
x-z plane (a free in-plane component, as a Bloch wall's); three images give
all three components and the data term holds all three.

The spins are parametrized as ``m = v / |v|`` and the energy minimized by
L-BFGS with its exact gradient (NumPy/SciPy; the degradation operator and its
adjoint are sparse), starting from the aligned bicubic up-sampling.

**Choosing K from the LR image alone.** Exchange against anisotropy sets the
width of a domain wall, delta = sqrt(J / 2K) lattice spacings (a tanh wall).
The LR image shows the wall width through the share of its samples that lie
inside walls (:func:`magsr_tf.ops.degradation.wall_width`: samples fall at random
places relative to the walls, and the wall length per area comes from the
sign changes between LR neighbours). The blur of the degradation is removed
in quadrature and the remaining width gives delta and K. Nothing is read from
a native-resolution image.

**Unresolved domains.** Where the LR grid no longer resolves the domains (more
than :data:`ALIASED_SIGN_CHANGES` of the LR neighbour pairs change sign,
:func:`sign_changes`) the prior paints sharp domains in the wrong places and
scores below interpolation (x8 on the MFM and second LTEM image in
docs/real_images.md). By default :func:`reconstruct` then returns the aligned
bicubic up-sampling and says so (``PriorResult.method``);
``PriorConfig(unresolved="prior")`` runs the prior anyway.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)

PRIORS = ("exchange", "anisotropy")
UNRESOLVED = ("interpolate", "prior")
"""What :func:`reconstruct` does with an LR image whose domains the LR grid does
not resolve (see :data:`ALIASED_SIGN_CHANGES`): return the aligned bicubic
up-sampling, or run the prior anyway."""
CONSISTENCY = 1000.0
"""Weight mu of the LR data term against exchange J = 1."""
TANH_PER_ERF_BAND = math.atanh(0.5) ** -1 * math.sqrt(2.0) * 0.4769362762044699
"""delta of a tanh(x / delta) wall per sigma of an erf(x / (sqrt 2 sigma)) wall
with the same |m| < 1/2 band (0.4769... = erfinv(1/2)): 1.2279."""
TANH_PER_ERF_L2 = 1.1757849
"""delta of the tanh(x / delta) wall closest in least squares to an
erf(x / (sqrt 2 sigma)) wall, per sigma (numerical minimum of
int (tanh(x / delta) - erf(x / sqrt 2))^2 dx; tests/test_image_prior.py)."""
TANH_PER_ERF = TANH_PER_ERF_L2
"""The conversion :func:`choose_anisotropy` uses. The wall width is measured as
an erf width (a tip or lens blurs a sharp wall into an erf); the prior's walls
are tanh. Least squares, not the |m| < 1/2 band, because the scores (MSE,
Pearson r) are least-squares ones: tanh tails are heavier than erf tails, so
the closest tanh is 4 % narrower than the band-matched one (K 9 % larger)."""
ALIASED_SIGN_CHANGES = 0.53
"""Share of LR neighbour pairs on opposite sides of the median above which the
domains count as not resolved by the LR grid (independent pixels give 1/2; a
resolved labyrinth of period P gives about 4r / (pi P), so 0.53 is P = 2.4 r).
Measured on synthetic labyrinths with known truth at x2, x4 and x8
(docs/scripts/unresolved_rule.py, docs/real_images.md): the prior scored below
aligned bicubic at shares of 0.553 and more and above it at 0.517 and less at
x8; at x2 the bracket is 0.496-0.572, at x4 0.588-0.617. 0.53 gives no case
below bicubic at any ratio, 0.02 below the lowest losing share (a false alarm
costs the prior's gain, a miss drops below interpolation)."""
MIN_WALL = 0.5
"""Smallest wall width delta (lattice spacings) the anisotropy is set for."""
NN_WEIGHT = 2.0 / 3.0
DIAGONAL_WEIGHT = 1.0 / 6.0
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5


@dataclass(frozen=True)
class PriorConfig:
    """The physics prior of :func:`reconstruct`.

    Attributes:
        prior: ``"exchange"`` (J only) or ``"anisotropy"`` (J and K).
        anisotropy: K / J; None: chosen from the LR image (:func:`choose_anisotropy`).
        consistency: mu / J, the weight of the LR data term.
        max_iter: L-BFGS iterations at most.
        tolerance: relative energy change that ends the minimization.
        unresolved: ``"interpolate"`` (default): when the LR image does not
            resolve the domains (more than :data:`ALIASED_SIGN_CHANGES` of its
            neighbour pairs change sign) return the aligned bicubic
            up-sampling instead: there the prior paints sharp domains in the
            wrong places and scores below interpolation (docs/real_images.md,
            x8). ``"prior"``: reconstruct anyway.
    """

    prior: str = "anisotropy"
    anisotropy: float | None = None
    consistency: float = CONSISTENCY
    max_iter: int = 400
    tolerance: float = 1e-9
    unresolved: str = "interpolate"

    def __post_init__(self):
        if self.prior not in PRIORS:
            raise MagsrError(f"prior must be one of {PRIORS}. Received: prior={self.prior!r}")
        if self.anisotropy is not None and not (
            math.isfinite(self.anisotropy) and self.anisotropy >= 0
        ):
            raise MagsrError(f"anisotropy must be >= 0. Received: anisotropy={self.anisotropy}")
        if not self.consistency > 0:
            raise MagsrError(f"consistency must be > 0. Received: consistency={self.consistency}")
        if self.unresolved not in UNRESOLVED:
            raise MagsrError(
                f"unresolved must be one of {UNRESOLVED}. Received: unresolved={self.unresolved!r}"
            )
        if self.max_iter < 1 or not self.tolerance > 0:
            raise MagsrError(
                f"need max_iter >= 1 and tolerance > 0. Received: max_iter={self.max_iter}, "
                f"tolerance={self.tolerance}"
            )


@dataclass
class PriorResult:
    """Outputs of :func:`reconstruct`.

    Attributes:
        image: ``[H, W, C]`` reconstruction in the LR image's intensity units.
        spins: ``[H, W, C]`` the spin components in [-1, 1].
        anisotropy: the K / J used.
        offset: intensity of m = 0 (per component).
        scale: intensity per unit m (per component).
        iterations: L-BFGS iterations.
        seconds: wall time of the minimization.
        lr_rms: RMS of ``A(image) - LR`` in intensity units.
        choice: how K was chosen (measured wall width, blur, delta).
        sign_changes: share of LR neighbour pairs on opposite sides of the
            median (m_z); above :data:`ALIASED_SIGN_CHANGES` a warning is
            logged: the domains are not resolved and the prior can do worse
            than interpolation.
        method: ``"prior"``, or ``"bicubic"`` where the LR image did not
            resolve the domains and ``unresolved="interpolate"`` returned the
            aligned bicubic up-sampling (then ``iterations`` is 0).
    """

    image: np.ndarray
    spins: np.ndarray
    anisotropy: float
    offset: np.ndarray
    scale: np.ndarray
    iterations: int
    seconds: float
    lr_rms: float
    choice: dict = field(default_factory=dict)
    sign_changes: float = 0.0
    method: str = "prior"


def sign_changes(lr: np.ndarray) -> float:
    """Share of horizontal and vertical LR neighbour pairs on opposite sides of the median."""
    lr = np.asarray(lr)
    s = lr > np.median(lr)
    changes = np.count_nonzero(s[1:] != s[:-1]) + np.count_nonzero(s[:, 1:] != s[:, :-1])
    return changes / max(s[1:].size + s[:, 1:].size, 1)


def intensity_scale(lr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offset and scale per component: the robust extremes of the LR image are m = -+1."""
    lo = np.percentile(lr, LOW_PERCENTILE, axis=(0, 1))
    hi = np.percentile(lr, HIGH_PERCENTILE, axis=(0, 1))
    if np.any(hi <= lo):
        raise MagsrError("the LR image has no contrast")
    return (hi + lo) / 2.0, (hi - lo) / 2.0


def degradation_sigma(degradation, ratio: int) -> float:
    """RMS radius per axis (native pixels) of the degradation's blur (its second moment)."""
    k = degradation.kernel(ratio)
    d = np.arange(k.shape[0]) - k.shape[0] // 2
    return float(math.sqrt(0.5 * np.sum(k * (d[:, None] ** 2 + d[None, :] ** 2))))


def choose_anisotropy(lr: np.ndarray, ratio: int, degradation=None) -> tuple[float, dict]:
    """K / J from the LR image alone: the wall width seen in the LR samples.

    Returns:
        K / J and a record of the measurement (``wall_width_lr`` erf-sigma in
        native pixels, ``blur_sigma``, ``native_wall``, ``delta``).
    """
    from magsr_tf.ops.degradation import parse_degradation, wall_width

    degradation = parse_degradation(degradation)
    component = np.asarray(lr)[..., -1] if np.asarray(lr).ndim == 3 else np.asarray(lr)
    measured = wall_width(component, ratio)
    blur = degradation_sigma(degradation, ratio)
    native = math.sqrt(max(measured**2 - blur**2, 0.0))
    delta = max(TANH_PER_ERF * native, MIN_WALL)
    k = 1.0 / (2.0 * delta**2)
    choice = {
        "wall_width_lr": measured,
        "blur_sigma": blur,
        "native_wall": native,
        "delta": delta,
        "anisotropy": k,
    }
    logger.info("anisotropy from the LR image: %s", choice)
    return k, choice


def _energy_and_gradient(v, shape, ops, y, mu, k, sample_weight):
    """Objective and gradient in the unconstrained vectors v (m = v / |v|)."""
    h, w, dims = shape
    v = v.reshape(h, w, dims)
    norm = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
    m = v / norm
    grad_m = np.zeros_like(m)
    energy = 0.0
    # Data term on the observed components: the last C of the spin vector.
    channels = y.shape[-1]
    for c in range(channels):
        comp = dims - channels + c
        r = ops(m[..., comp]) - y[..., c]
        energy += 0.5 * mu * float(np.sum(r * r)) * sample_weight
        grad_m[..., comp] += mu * sample_weight * ops.adjoint(r)
    # Exchange, open boundaries: bonds inside the image only. Nearest
    # neighbours weigh 2/3 and diagonal neighbours 1/6: the same stiffness as
    # J on nearest neighbours alone, but a wall costs the same in every
    # direction to fourth order (no pull of the walls onto the lattice axes).
    for weight, a, b in (
        (NN_WEIGHT, (slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        (NN_WEIGHT, (slice(None), slice(1, None)), (slice(None), slice(None, -1))),
        (DIAGONAL_WEIGHT, (slice(1, None), slice(1, None)), (slice(None, -1), slice(None, -1))),
        (DIAGONAL_WEIGHT, (slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))),
    ):
        if not weight:
            continue
        bonds = np.sum(m[a] * m[b], axis=-1)
        energy += weight * float(bonds.size - bonds.sum())
        grad_m[a] -= weight * m[b]
        grad_m[b] -= weight * m[a]
    if k:
        mz = m[..., -1]
        energy += k * float(np.sum(1.0 - mz * mz))
        grad_m[..., -1] -= 2.0 * k * mz
    # Chain rule through the normalization: project out the radial part.
    radial = np.sum(grad_m * m, axis=-1, keepdims=True)
    grad_v = (grad_m - radial * m) / norm
    return energy, grad_v.ravel()


def reconstruct(
    lr: np.ndarray,
    ratio: int,
    degradation=None,
    config: PriorConfig | None = None,
    init: np.ndarray | None = None,
    callback: Callable[[dict], None] | None = None,
) -> PriorResult:
    """Super-resolves an LR image by minimizing the lattice energy under the LR constraint.

    Args:
        lr: ``[h, w, C]`` (or ``[h, w]``) LR image, C = 1 (m_z) or 3 (m_x, m_y, m_z).
        ratio: up-sampling ratio r.
        degradation: the blur that made the LR image (spec or Degradation;
            None: Gaussian sigma = 1).
        config: the prior (default: anisotropy chosen from the LR image).
        init: ``[h r, w r, C]`` starting image in LR intensity units (for
            example a network's SR); default the aligned bicubic up-sampling.
        callback: called every few iterations with ``{"iteration", "energy"}``.

    Returns:
        The reconstruction (see :class:`PriorResult`).

    Raises:
        MagsrError: a bad shape, a flat image, or an image smaller than 2x2.
    """
    from magsr_tf.ops.degradation import DegradationOperator, parse_degradation
    from magsr_tf.ops.interpolation import upsample

    config = config or PriorConfig()
    degradation = parse_degradation(degradation)
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim == 2:
        lr = lr[..., None]
    if lr.ndim != 3 or lr.shape[-1] not in (1, 3):
        raise MagsrError(f"expected an LR image [h, w, 1 or 3]. Received: shape={lr.shape}")
    if min(lr.shape[:2]) < 2:
        raise MagsrError(f"the LR image is too small. Received: shape={lr.shape}")
    h, w, channels = lr.shape
    offset, scale = intensity_scale(lr)
    changes = sign_changes(lr[..., -1])
    unresolved = changes > ALIASED_SIGN_CHANGES
    if unresolved:
        logger.warning(
            "%.0f %% of neighbouring LR pixels change sign: the domains are narrower than the "
            "LR grid resolves, and the prior can do worse than interpolation; %s",
            100 * changes,
            "returning the aligned bicubic up-sampling (unresolved='prior' runs the prior)"
            if config.unresolved == "interpolate"
            else "running the prior anyway (unresolved='prior')",
        )
    y = (lr - offset) / scale
    choice = {}
    if config.prior == "exchange":
        k = 0.0
    elif config.anisotropy is not None:
        k = float(config.anisotropy)
    else:
        k, choice = choose_anisotropy(lr, ratio, degradation)
    ops = DegradationOperator((h * ratio, w * ratio), ratio, degradation, "reflect")
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (h * ratio, w * ratio, channels):
            raise MagsrError(
                f"init must be [{h * ratio}, {w * ratio}, {channels}]. Received: shape={init.shape}"
            )
    if unresolved and config.unresolved == "interpolate":
        t0 = time.perf_counter()
        method, iterations = "bicubic", 0
        image = upsample(lr, ratio, "bicubic", aligned=True, padding="reflect")
        spins = np.clip((image - offset) / scale, -1.0, 1.0)
    else:
        method = "prior"
        if init is None:
            init = upsample(lr, ratio, "bicubic", aligned=True, padding="reflect")
        start = np.clip((init - offset) / scale, -0.98, 0.98)
        t0 = time.perf_counter()
        spins, iterations = _minimize_energy(start, y, ops, config, k, callback)
        image = spins * scale + offset
    seconds = time.perf_counter() - t0
    residual = np.stack([ops(image[..., c]) for c in range(channels)], -1) - lr
    lr_rms = float(np.sqrt(np.mean(residual**2)))
    logger.info(
        "prior %s K=%.4g (%s): %d iterations, %.1f s, LR rms %.2e",
        config.prior,
        k,
        method,
        iterations,
        seconds,
        lr_rms,
    )
    return PriorResult(
        image=image.astype(np.float32),
        spins=spins.astype(np.float32),
        anisotropy=k,
        offset=np.asarray(offset),
        scale=np.asarray(scale),
        iterations=iterations,
        seconds=seconds,
        lr_rms=lr_rms,
        choice=choice,
        sign_changes=changes,
        method=method,
    )


def _minimize_energy(start, y, ops, config, k, callback):
    """L-BFGS over m = v / |v| from ``start`` (``[H, W, C]`` spin components in (-1, 1)).

    Returns:
        The observed spin components ``[H, W, C]`` and the number of iterations.
    """
    from scipy.optimize import minimize

    h, w, channels = start.shape
    if channels == 1:
        # m_z only: the spin turns in the x-z plane, its x part the rest of the unit length.
        dims = 2
        v0 = np.concatenate([np.sqrt(1.0 - start**2), start], axis=-1)
    else:
        dims = 3
        v0 = start + 1e-3  # a zero vector has no direction
    # Per-LR-pixel data weight: the data term's size does not depend on r.
    sample_weight = 1.0
    fun_shape = (h, w, dims)
    iteration = [0]

    def on_iteration(xk):
        iteration[0] += 1
        if callback is not None and iteration[0] % 10 == 0:
            callback({"kind": "prior", "iteration": iteration[0], "max_iter": config.max_iter})

    res = minimize(
        _energy_and_gradient,
        v0.ravel(),
        args=(fun_shape, ops, y, config.consistency, k, sample_weight),
        jac=True,
        method="L-BFGS-B",
        callback=on_iteration,
        options={"maxiter": config.max_iter, "ftol": config.tolerance, "gtol": 1e-12},
    )
    v = res.x.reshape(fun_shape)
    m = v / np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
    return m[..., dims - channels :], int(res.nit)


def synthetic_domains(
    shape: tuple[int, int], period: float, wall: float, seed: int = 0
) -> np.ndarray:
    """A labyrinth of up/down domains with tanh walls, for tests and accuracy checks.

    The sign of band-passed noise (ring of radius 1 / ``period`` in the
    spectrum) sets the domains; dividing the field by its RMS gradient makes
    it the distance to the nearest wall near the walls, so ``tanh(f / wall)``
    has walls of width ``wall`` pixels (``wall = 0``: sharp, two levels).

    Returns:
        ``[H, W]`` float64 in [-1, 1].
    """
    rng = np.random.default_rng(seed)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.fftfreq(shape[1])[None, :]
    ring = np.exp(-0.5 * ((np.hypot(ky, kx) - 1.0 / period) / (0.15 / period)) ** 2)
    f = np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * ring).real
    gy, gx = np.gradient(f)
    f = f / np.sqrt(np.mean(gy * gy + gx * gx))
    if wall <= 0:
        return np.where(f > 0, 1.0, -1.0)
    return np.tanh(f / wall)
