"""Physics-informed reconstruction: the SR map that the Hamiltonian and the LR image agree on.

The LR image fixes only what the Gaussian downsizing passes; the rest (its
null space) is left open, and every SR method fills it with some prior. The
data's own Hamiltonian is the right one: the ground truth is one of its
zero-temperature states. :func:`refine` minimizes, per image,

    F(S) = E_H(S) / N  +  mu * mean((Down(S) - LR)^2),     S = X / |X|,

over unconstrained ``X`` (so the spins stay unit vectors), with Adam, starting
from an initial SR map (the grid-aligned periodic bicubic of the LR image, or
a trained network's SR). ``Down`` is the package's Gaussian downsizing
(:func:`magsr_tf.ops.downsample.downsample_matrix`, the operator that made the
LR data), ``E_H`` the energy of :mod:`magsr_tf.nn.energy`.

A plain penalty lets the minimizer trade LR consistency for energy: on Type II
×16 the prototype drifted away from the ground truth after ~200 steps while
its energy fell below the ground truth's. The default therefore enforces the
constraint Down(S) = LR with an augmented Lagrangian (the multiplier is
updated every ``multiplier_every`` steps), so that the penalty weight need not
grow without bound and the answer stays on the data. Measurements behind every
default are in docs/physics_prior.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.inputs import check_lr_values
from magsr_tf.nn.energy import SpinEnergy
from magsr_tf.ops.kernels import RATIOS
from magsr_tf.ops.noise import CLEAN_SIGMA
from magsr_tf.physics.hamiltonian_io import hamiltonian_to_json, resolve_hamiltonian

log = logging.getLogger(__name__)

DEFAULT_STEPS = 200
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_WEIGHT = 100.0
DEFAULT_MULTIPLIER_EVERY = 50
DEFAULT_BATCH = 100
# Noisy LR: the misfit weight is mu = NOISE_KAPPA / (sigma^2 r^2), the Gaussian
# likelihood at an effective temperature T = 2 kappa / 3 against the energy per
# spin (the LR misfit is a mean over 3 h w values, the energy over h w r^2
# spins). Measured in docs/noise.md.
DEFAULT_NOISE_KAPPA = 0.012
# An open window is reconstructed on a domain this many LR pixels wider on each
# side (free spins, open-boundary energy) and fitted to the LR image only on the
# window's own pixels: the downsizing of its border pixels reaches past the edge.
OPEN_MARGIN_LR = 2

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class RefineConfig:
    """How to refine.

    Attributes:
        steps: Adam steps per batch.
        learning_rate: Adam step size on the unnormalized spins X.
        weight: mu, the weight of the LR misfit (mean over LR pixels and
            components) against the energy per spin.
        constraint: "lagrangian" (augmented Lagrangian: the LR image is held
            exactly at convergence) or "penalty" (the prototype's plain penalty).
        multiplier_every: steps between multiplier updates ("lagrangian").
        boundary: "periodic" (simulations) or "open" (a window of a larger
            texture: the open-boundary energy on a domain :data:`OPEN_MARGIN_LR`
            LR pixels wider, the LR misfit on the window's pixels only, then cropped).
        padding: padding of the downsizing, "periodic" or "reflect".
        dtype: "float32" (default, measured as good as float64 here) or "float64".
        batch_size: LR images refined together.
        record_every: steps between recorded objective values in the history.
        degradation: the blur that made the LR input (None: the package's
            sigma = 1 Gaussian); a separable spec of :mod:`magsr_tf.ops.degradation`.
        noise_kappa: kappa of the noisy-LR misfit weight mu = kappa / (sigma^2 r^2),
            used for every image whose noise level (the ``noise`` argument of
            :func:`refine`) is at least :data:`magsr_tf.ops.noise.CLEAN_SIGMA`;
            cleaner images keep ``weight`` and ``constraint``.
    """

    steps: int = DEFAULT_STEPS
    learning_rate: float = DEFAULT_LEARNING_RATE
    weight: float = DEFAULT_WEIGHT
    constraint: str = "lagrangian"
    multiplier_every: int = DEFAULT_MULTIPLIER_EVERY
    boundary: str = "periodic"
    padding: str = "periodic"
    dtype: str = "float32"
    batch_size: int = DEFAULT_BATCH
    record_every: int = 25
    degradation: str | None = None
    noise_kappa: float = DEFAULT_NOISE_KAPPA

    def __post_init__(self):
        if not self.noise_kappa > 0:
            raise MagsrError(f"noise_kappa must be > 0. Received: {self.noise_kappa}")
        if self.degradation is not None:
            from magsr_tf.ops.degradation import parse_degradation

            if not parse_degradation(self.degradation).separable:
                raise MagsrError(
                    "refine needs a separable degradation (gaussian or box). "
                    f"Received: degradation={self.degradation!r}"
                )
        if self.steps < 0:
            raise MagsrError(f"steps must be >= 0. Received: steps={self.steps}")
        if not self.learning_rate > 0:
            raise MagsrError(f"learning rate must be > 0. Received: lr={self.learning_rate}")
        if not self.weight > 0:
            raise MagsrError(f"weight must be > 0. Received: weight={self.weight}")
        if self.constraint not in ("lagrangian", "penalty"):
            raise MagsrError(
                "constraint must be 'lagrangian' or 'penalty'. "
                f"Received: constraint={self.constraint!r}"
            )
        if self.multiplier_every < 1:
            raise MagsrError(
                f"multiplier_every must be >= 1. Received: multiplier_every={self.multiplier_every}"
            )
        if self.boundary not in ("periodic", "open"):
            raise MagsrError(f"boundary must be 'periodic' or 'open'. Received: {self.boundary!r}")
        if self.padding not in ("periodic", "reflect"):
            raise MagsrError(f"padding must be 'periodic' or 'reflect'. Received: {self.padding!r}")
        if self.dtype not in ("float32", "float64"):
            raise MagsrError(f"dtype must be float32 or float64. Received: {self.dtype!r}")
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if self.record_every < 1:
            raise MagsrError(f"record_every must be >= 1. Received: {self.record_every}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RefineResult:
    """What :func:`refine` produced.

    Attributes:
        sr: ``[n, H, W, 3]`` float32 unit spins.
        energy_per_spin: ``[n]`` energy per spin of ``sr`` under the Hamiltonian.
        lr_misfit: ``[n]`` mean squared difference of Down(sr) and the LR input.
        history: per recorded step, the batch means of energy and misfit.
        seconds: wall time.
    """

    sr: np.ndarray
    energy_per_spin: np.ndarray
    lr_misfit: np.ndarray
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def check_lr(lr: np.ndarray, source: str = "LR input") -> np.ndarray:
    """Validates LR spin maps ``[n, h, w, 3]``: finite, and no vector longer than 1.

    Raises:
        MagsrError: wrong shape, NaN/inf, or vectors longer than 1 + tolerance.
    """
    lr = np.asarray(lr)
    if lr.ndim == 3:
        lr = lr[None]
    if lr.ndim != 4 or lr.shape[-1] != 3:
        raise MagsrError(
            f"{source}: expected LR spin maps shaped [n, h, w, 3]. Received: shape={lr.shape}"
        )
    return check_lr_values(lr.astype(np.float32), source)


def _initial_map(lr: np.ndarray, ratio: int, padding: str) -> np.ndarray:
    from magsr_tf.ops.interpolation import upsample

    return upsample(lr, ratio, "bicubic", aligned=True, padding=padding)


def _extend_start(lr, x0, ratio: int, margin: int, padding: str) -> np.ndarray:
    """The start on the wider domain of an open window: bicubic of the extended LR
    outside, the given start inside."""
    from magsr_tf.ops.spins import unit_normalize
    from magsr_tf.ops.windows import extend

    wide = unit_normalize(_initial_map(extend(lr, margin), ratio, padding))
    m = margin * ratio
    wide[:, m:-m, m:-m] = x0
    return wide


def misfit_weights(sigma, ratio: int, config: RefineConfig, kappa=None):
    """Per-image misfit weight mu ``[n]`` and whether the exact constraint applies ``[n]``.

    Clean images (sigma below :data:`magsr_tf.ops.noise.CLEAN_SIGMA`) keep
    ``config.weight`` and, with ``constraint="lagrangian"``, the exact LR
    constraint; noisy ones get the likelihood weight kappa / (sigma^2 r^2) and
    no multiplier (the LR image is not to be matched exactly).
    """
    sigma = np.asarray(sigma, dtype=np.float64)
    clean = sigma < CLEAN_SIGMA
    kappa = config.noise_kappa if kappa is None else np.asarray(kappa, dtype=np.float64)
    kappa = np.where(np.isfinite(kappa), kappa, config.noise_kappa)
    mu = np.where(clean, config.weight, kappa / (np.maximum(sigma, 1e-12) ** 2 * ratio**2))
    exact = clean & (config.constraint == "lagrangian")
    return mu, exact


def _refine_batch(
    lr,
    x0,
    ratio,
    energy: SpinEnergy,
    config: RefineConfig,
    on_record,
    sigma,
    kappa=None,
    margin: int = 0,
):
    """Runs the optimizer on one batch; returns (sr, energy/spin, misfit) as NumPy.

    ``x0`` may be ``margin`` LR pixels wider than ``lr`` on each side (an open
    window): the misfit then uses only the rows of the downsizing that make the
    window's pixels.
    """
    import tensorflow as tf

    from magsr_tf.ops.downsample import downsample_matrix

    dtype = tf.float32 if config.dtype == "float32" else tf.float64
    n, h, w, _ = x0.shape
    rows = slice(margin, h // ratio - margin)
    cols = slice(margin, w // ratio - margin)
    wy = downsample_matrix(h, ratio, config.padding, config.degradation)[rows]
    wx = downsample_matrix(w, ratio, config.padding, config.degradation)[cols]
    wy, wx = tf.constant(wy, dtype), tf.constant(wx, dtype)
    lr_t = tf.constant(lr, dtype)
    mu_np, exact_np = misfit_weights(sigma, ratio, config, kappa)
    mu = tf.constant(mu_np, dtype)
    exact = tf.constant(exact_np.astype(np.float64)[:, None, None, None], dtype)
    lagrangian = bool(exact_np.any())
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    lr_rate = tf.constant(config.learning_rate, dtype)

    def unit(x):
        return x * tf.math.rsqrt(tf.maximum(tf.reduce_sum(x * x, -1, keepdims=True), 1e-24))

    def terms(x, lam):
        s = unit(x)
        e = energy(s)
        resid = tf.einsum("ki,nijc,lj->nklc", wy, s, wx) - lr_t
        misfit = tf.reduce_mean(tf.square(resid), axis=[1, 2, 3])
        objective = e + mu * misfit
        if lagrangian:  # lam is zero for the noisy images (exact = 0)
            objective += tf.reduce_mean(lam * resid, axis=[1, 2, 3])
        return objective, e, misfit, resid

    @tf.function(reduce_retracing=True)
    def run(x, m, v, lam, t0, count):
        def body(i, x, m, v):
            with tf.GradientTape() as tape:
                tape.watch(x)
                objective, _, _, _ = terms(x, lam)
                total = tf.reduce_sum(objective)
            g = tape.gradient(total, x)
            t = tf.cast(t0 + i + 1, dtype)
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            step = lr_rate * tf.sqrt(1 - beta2**t) / (1 - beta1**t)
            x = x - step * m / (tf.sqrt(v) + eps)
            return i + 1, x, m, v

        _, x, m, v = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(0), x, m, v), parallel_iterations=1
        )
        _, e, misfit, resid = terms(x, lam)
        return x, m, v, e, misfit, resid

    x = tf.constant(x0, dtype)
    m = tf.zeros_like(x)
    v = tf.zeros_like(x)
    lam = tf.zeros_like(lr_t)
    done = 0
    chunk = config.multiplier_every if lagrangian else config.record_every
    chunk = max(1, min(chunk, config.record_every))
    e, misfit, _ = None, None, None
    if config.steps == 0:
        _, e, misfit, _ = terms(x, lam)
    while done < config.steps:
        count = min(chunk, config.steps - done)
        x, m, v, e, misfit, resid = run(x, m, v, lam, tf.constant(done), tf.constant(count))
        done += count
        if lagrangian and done % config.multiplier_every == 0:
            # Gradient ascent on the multiplier of the mean-reduced residual: the
            # minimizer of E/N + lam.r/M + mu |r|^2/M has lam = -2 mu r at a fixed point.
            lam = lam + 2.0 * mu[:, None, None, None] * resid * exact
        on_record(done, float(tf.reduce_mean(e)), float(tf.reduce_mean(misfit)))
    s = unit(x)
    return (
        np.asarray(s, dtype=np.float32),
        np.asarray(e, dtype=np.float64),
        np.asarray(misfit, dtype=np.float64),
    )


def refine(
    lr,
    ratio: int,
    hamiltonian,
    init=None,
    config: RefineConfig | None = None,
    progress: Progress | None = None,
    noise=None,
    kappa=None,
) -> RefineResult:
    """Reconstructs SR spin maps from LR ones under a Hamiltonian.

    Args:
        lr: ``[n, h, w, 3]`` LR spin maps (made by the package's Gaussian downsizing).
        ratio: super-resolution ratio r (the SR maps are ``[n, h r, w r, 3]``).
        hamiltonian: anything :func:`magsr_tf.physics.hamiltonian_io.resolve_hamiltonian` takes.
        init: None (the grid-aligned periodic bicubic of ``lr``), an array of
            initial SR maps ``[n, h r, w r, 3]``, or a callable ``lr_batch -> sr_batch``
            (e.g. a trained SR model).
        config: :class:`RefineConfig` (defaults measured in docs/physics_prior.md).
        progress: called with ``{"kind": "refine", "done", "total", "step", "steps",
            "energy", "misfit"}`` after every recorded chunk of steps.
        noise: the LR noise level per component, a scalar or ``[n]`` (None or 0:
            clean input, held exactly with the default constraint); noisy
            images are fitted with the likelihood weight of
            :func:`misfit_weights` instead.
        kappa: per-image kappa of the noisy images ``[n]`` (None:
            ``config.noise_kappa``); NaN keeps that image's initial map
            unchanged (a model's measured policy where refining does not help:
            :func:`magsr_tf.inference.noise_switch.refine_policy`).

    Returns:
        :class:`RefineResult` with unit-length SR maps.

    Raises:
        MagsrError: a bad ratio, bad LR input, or an init of the wrong shape.
    """
    config = config or RefineConfig()
    if not isinstance(ratio, (int, np.integer)) or ratio < 1 or (ratio & (ratio - 1)):
        raise MagsrError(f"ratio must be a power of two such as {RATIOS}. Received: ratio={ratio}")
    lr = check_lr(lr)
    ham = resolve_hamiltonian(hamiltonian)
    n, h, w, _ = lr.shape
    energy = SpinEnergy(ham, boundary=config.boundary, dtype=config.dtype)
    if isinstance(init, np.ndarray) and init.shape != (n, h * ratio, w * ratio, 3):
        raise MagsrError(
            f"the initial SR maps must have shape {(n, h * ratio, w * ratio, 3)}. "
            f"Received: shape={init.shape}"
        )
    sigma = np.zeros(n) if noise is None else np.broadcast_to(np.asarray(noise, float), (n,))
    if not (np.isfinite(sigma).all() and (sigma >= 0).all()):
        raise MagsrError(f"noise levels must be finite and >= 0. Received: {noise}")
    kappa = None if kappa is None else np.broadcast_to(np.asarray(kappa, float), (n,))
    keep = np.zeros(n, bool) if kappa is None else (~np.isfinite(kappa) & (sigma >= CLEAN_SIGMA))
    t0 = time.perf_counter()
    history: list[dict] = []
    out_sr, out_e, out_m = [], [], []
    margin = OPEN_MARGIN_LR if config.boundary == "open" else 0
    if margin:
        from magsr_tf.ops.windows import check_window

        check_window(lr.shape, "refine")
    for start in range(0, n, config.batch_size):
        batch = lr[start : start + config.batch_size]
        if init is None:
            x0 = _initial_map(batch, ratio, config.padding)
        elif callable(init):
            x0 = np.asarray(init(batch), dtype=np.float32)
            if x0.shape != (len(batch), h * ratio, w * ratio, 3):
                raise MagsrError(
                    f"the initial model maps {batch.shape} to {x0.shape}, not to "
                    f"{(len(batch), h * ratio, w * ratio, 3)}: is its ratio {ratio}?"
                )
        else:
            x0 = np.asarray(init[start : start + config.batch_size], dtype=np.float32)
        if margin:
            x0 = _extend_start(batch, x0, ratio, margin, config.padding)

        def on_record(step, e_mean, misfit_mean, start=start, size=len(batch)):
            history.append({"first": start, "step": step, "energy": e_mean, "misfit": misfit_mean})
            if progress is not None:
                done = start + size * step / max(config.steps, 1)
                progress(
                    {
                        "kind": "refine",
                        "done": done,
                        "total": n,
                        "step": step,
                        "steps": config.steps,
                        "energy": e_mean,
                        "misfit": misfit_mean,
                    }
                )

        part = slice(start, start + len(batch))
        kept = keep[part]
        sr = np.empty(x0.shape, np.float32)
        e, misfit = np.empty(len(batch)), np.empty(len(batch))
        # Maps the policy keeps take no steps: their start, its energy and misfit as they are.
        for mask, run_config in ((~kept, config), (kept, replace(config, steps=0))):
            if mask.any():
                sr[mask], e[mask], misfit[mask] = _refine_batch(
                    batch[mask],
                    x0[mask],
                    ratio,
                    energy,
                    run_config,
                    on_record,
                    sigma[part][mask],
                    None if kappa is None else kappa[part][mask],
                    margin,
                )
        if not (np.isfinite(sr).all() and np.isfinite(e).all()):
            raise MagsrError("refinement diverged (non-finite spins); lower --lr")
        if margin:
            m = margin * ratio
            sr = sr[:, m:-m, m:-m]
        out_sr.append(sr)
        out_e.append(e)
        out_m.append(misfit)
    seconds = time.perf_counter() - t0
    log.info("refined %d maps at x%d in %.1f s", n, ratio, seconds)
    return RefineResult(
        sr=np.concatenate(out_sr),
        energy_per_spin=np.concatenate(out_e),
        lr_misfit=np.concatenate(out_m),
        history=history,
        seconds=seconds,
    )


def describe(ham, config: RefineConfig) -> dict:
    """JSON-able record of a refinement (for summary files)."""
    return {"hamiltonian": hamiltonian_to_json(resolve_hamiltonian(ham)), **config.to_dict()}
