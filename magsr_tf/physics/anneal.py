"""Monte Carlo simulated annealing of the Type I / Type II spin lattices, ending at T = 0.

Every configuration starts from its own uniformly random state and is cooled from above the
ordering temperature to near zero with checkerboard heat-bath sweeps, each followed by
over-relaxation sweeps, then relaxed at zero temperature (each spin turned to its local effective
field, anisotropy included) until the largest torque ``|S x h_eff|`` is below ``relax_tol``. The
move type and schedule were chosen by measurement: see ``docs/annealer.md``.

Two backends implement the same moves behind `anneal`: "numpy" (vectorized, batched over
configurations; the reference design) and "numba" (compiled loops, one configuration at a time,
faster). Results depend only on each configuration's Generator and the backend, never on the
batch size or the number of worker processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from dataclasses import asdict, dataclass, replace

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.physics import numpy_backend as npb
from magsr_tf.physics.hamiltonian import (
    TypeI,
    TypeII,
    check_spins,
    energy_per_spin,
    max_torque,
)
from magsr_tf.physics.workers import spawn_pool

__all__ = [
    "Schedule",
    "default_schedule",
    "schedule_attrs",
    "DEFAULT_BATCH",
    "BACKENDS",
    "anneal",
    "relax",
    "resolve_backend",
    "thermal_energies",
]

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 16
"""Configurations per batch per worker (the numpy backend updates a batch at once)."""

BACKENDS = ("auto", "numpy", "numba")
TYPE_II_FIELD_REFRESH = 4
"""Default `Schedule.field_refresh` of Type II (measured, docs/annealer.md)."""
COOLINGS = ("geometric", "linear")
MOVES = ("heatbath",)


@dataclass(frozen=True)
class Schedule:
    """Annealing schedule and move set.

    Temperature step k (k = 0 .. sweeps - 1) runs one checkerboard heat-bath sweep then
    ``over_relax`` over-relaxation sweeps at temperature T_k, cooled from ``t_start`` to ``t_end``
    geometrically (T_k = t_start (t_end / t_start)^(k / (sweeps - 1))) or linearly. Then
    zero-temperature relaxation runs until the largest torque is below ``relax_tol`` (at most
    ``relax_max_sweeps`` sweeps). Type II dipolar field: the numpy backend recomputes it (FFT)
    before every half-sweep and holds it fixed during it; the numba backend evaluates the
    nearest-neighbour dipoles live and refreshes the far field every ``field_refresh`` steps
    (``field_refresh = 0``: the whole field before every half-sweep, the scheme before issue 25).

    Attributes:
        t_start: First temperature (units of J), above the ordering temperature.
        t_end: Last temperature, near zero.
        sweeps: Number of heat-bath sweeps (temperature steps).
        over_relax: Over-relaxation sweeps after each heat-bath sweep.
        cooling: "geometric" or "linear".
        move: "heatbath" (the only move type; recorded for the data attributes).
        relax_tol: Torque bound |S x h_eff| that ends the zero-temperature relaxation.
        relax_max_sweeps: Cap on relaxation sweeps (a warning is logged if reached).
        field_refresh: Type II, numba backend: temperature steps between refreshes of the far
            dipolar field (0: the whole field before every half-sweep).
    """

    t_start: float
    t_end: float
    sweeps: int
    over_relax: int = 1
    cooling: str = "geometric"
    move: str = "heatbath"
    relax_tol: float = 1e-2
    relax_max_sweeps: int = 20_000
    field_refresh: int = TYPE_II_FIELD_REFRESH

    def __post_init__(self) -> None:
        if not (0 < self.t_end <= self.t_start and math.isfinite(self.t_start)):
            raise MagsrError(
                f"Need 0 < t_end <= t_start. Received: t_start={self.t_start}, t_end={self.t_end}"
            )
        if self.sweeps < 1 or self.over_relax < 0:
            raise MagsrError(
                "Need sweeps >= 1 and over_relax >= 0. "
                f"Received: sweeps={self.sweeps}, over_relax={self.over_relax}"
            )
        if int(self.field_refresh) != self.field_refresh or self.field_refresh < 0:
            raise MagsrError(
                f"field_refresh must be an integer >= 0. Received: {self.field_refresh!r}"
            )
        if self.cooling not in COOLINGS:
            raise MagsrError(f"cooling must be one of {COOLINGS}. Received: {self.cooling!r}")
        if self.move not in MOVES:
            raise MagsrError(f"move must be one of {MOVES}. Received: {self.move!r}")
        if not self.relax_tol > 0 or self.relax_max_sweeps < 1:
            raise MagsrError(
                "Need relax_tol > 0 and relax_max_sweeps >= 1. "
                f"Received: relax_tol={self.relax_tol}, relax_max_sweeps={self.relax_max_sweeps}"
            )

    def temperatures(self) -> np.ndarray:
        """Temperature of each heat-bath sweep, float64 ``[sweeps]``."""
        if self.sweeps == 1:
            return np.array([self.t_end])
        frac = np.arange(self.sweeps) / (self.sweeps - 1)
        if self.cooling == "geometric":
            return self.t_start * (self.t_end / self.t_start) ** frac
        return self.t_start + (self.t_end - self.t_start) * frac

    def longer(self, factor: int) -> Schedule:
        """The same schedule with `factor` times as many sweeps (convergence checks)."""
        return replace(self, sweeps=self.sweeps * int(factor))


def default_schedule(ham) -> Schedule:
    """The measured default schedule for `ham` (measurements in docs/annealer.md).

    Type I: 200 steps (heat bath + over-relaxation), T = 1.5 -> 0.02 geometric: about 0.2 CPU s
    per 128^2 configuration, energy within 0.03 % of a four-times-longer anneal. Type II: 1000
    steps over the same range: the domain structure (S_z peak, wall fraction) is that of the
    four-times-longer anneal, and the paper's misaligned (half-pixel) bicubic baseline scores the
    same as in Lee et al.'s Table 2 (x4 / x8 / x16 MSE 0.0061 / 0.030 / 0.102 on 16 states vs
    0.0058 / 0.029 / 0.0975).
    """
    if isinstance(ham, TypeI):
        return Schedule(t_start=1.5, t_end=0.02, sweeps=200, over_relax=1)
    if isinstance(ham, TypeII):
        return Schedule(
            t_start=1.5,
            t_end=0.02,
            sweeps=1000,
            over_relax=1,
            field_refresh=TYPE_II_FIELD_REFRESH,
        )
    raise MagsrError(f"Unknown Hamiltonian. Received: {ham!r}")


def schedule_attrs(schedule: Schedule, ham=None) -> dict:
    """JSON-able description of `schedule` (for HDF5 attributes).

    For a Type I `ham` the description is the one from before issue 25 (no ``field_refresh``,
    which only concerns Type II): Type I results are bit-identical to those of that annealer, so
    Type I files keep their attributes and a file begun before can be resumed.
    """
    if isinstance(ham, TypeI):
        attrs = asdict(schedule)
        del attrs["field_refresh"]
        return {
            **attrs,
            "update": "checkerboard sublattices; heat bath (exact sampling of exp(beta h.S)) + "
            "over-relaxation; Type II anisotropy by Metropolis acceptance, dipolar field per "
            "half-sweep",
            **_START_FINISH,
        }
    return {
        **asdict(schedule),
        "update": "checkerboard sublattices; heat bath (exact sampling of exp(beta h.S)) + "
        "over-relaxation; Type II anisotropy by Metropolis acceptance; dipolar field: numpy "
        "backend whole field per half-sweep, numba backend nearest-neighbour dipoles live and the "
        "far field every field_refresh steps (0: whole field per half-sweep)",
        **_START_FINISH,
    }


_START_FINISH = {
    "start": "uniformly random unit vectors",
    "finish": "zero-temperature relaxation (spins turned to h_eff) to max torque < relax_tol",
}


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a declared dependency
        return False
    return True


def resolve_backend(backend: str) -> str:
    """Map "auto" to "numba" when numba imports, else "numpy"; validate the name."""
    if backend not in BACKENDS:
        raise MagsrError(f"backend must be one of {BACKENDS}. Received: backend={backend!r}")
    if backend == "auto":
        return "numba" if _numba_available() else "numpy"
    return backend


def _check_ham(ham) -> None:
    if not isinstance(ham, (TypeI, TypeII)):
        raise MagsrError(f"ham must be a TypeI or TypeII Hamiltonian. Received: {ham!r}")


# --------------------------------------------------------------------------- numpy backend


def _anneal_batch_numpy(ham, rngs, lattice, schedule) -> np.ndarray:
    q = npb.random_quarters(rngs, lattice)
    for temperature in schedule.temperatures():
        beta = 1.0 / temperature
        for parity in (0, 1):
            npb.heat_bath_half_sweep(q, parity, beta, ham, rngs)
        for _ in range(schedule.over_relax):
            for parity in (0, 1):
                npb.over_relax_half_sweep(q, parity, beta, ham, rngs)
    return _relax_numpy(npb.from_quarters(q), ham, schedule.relax_tol, schedule.relax_max_sweeps)


def _relax_numpy(spins, ham, tol, max_sweeps) -> np.ndarray:
    """Batched relaxation; a configuration stops at the first sweep where it meets `tol`.

    The torque measured while aligning (before turning) preselects candidates; a candidate
    stops when the exact torque of its float32 state is below `tol`. Decisions are per
    configuration, so the result does not depend on the batch.
    """
    out = np.array(spins, dtype=np.float64)
    active = np.flatnonzero(max_torque(out.astype(np.float32), ham) >= tol)
    q = npb.to_quarters(out[active])
    for _ in range(max_sweeps):
        if active.size == 0:
            break
        worst = np.maximum(npb.align_half_sweep(q, 0, ham), npb.align_half_sweep(q, 1, ham))
        candidates = np.flatnonzero(worst < tol)
        if candidates.size == 0:
            continue
        states = npb.from_quarters(q[:, :, candidates])
        done = max_torque(states.astype(np.float32), ham) < tol
        out[active[candidates[done]]] = states[done]
        keep = np.ones(active.size, dtype=bool)
        keep[candidates[done]] = False
        active = active[keep]
        q = np.ascontiguousarray(q[:, :, keep])
    else:
        if active.size:
            logger.warning("relaxation stopped after %d sweeps above tol=%g", max_sweeps, tol)
            out[active] = npb.from_quarters(q)
    return out


# --------------------------------------------------------------------------- public API


def relax(
    spins: np.ndarray,
    ham,
    tol: float = 1e-2,
    max_iter: int = 20_000,
    backend: str = "auto",
) -> np.ndarray:
    """Zero-temperature relaxation: turn spins to their local effective field until converged.

    Checkerboard sweeps turn every spin of one sublattice to its h_eff (anisotropy field
    2 K S_z z included; Type II dipolar field recomputed before each half-sweep) until the
    largest torque ``|S x h_eff|`` of the float32 state is below `tol`, or `max_iter` sweeps.

    Args:
        spins: ``[n, L, L, 3]`` unit vectors.
        ham: TypeI or TypeII.
        tol: torque bound.
        max_iter: maximum number of sweeps per configuration.
        backend: "auto", "numpy" or "numba".

    Returns:
        float32 ``[n, L, L, 3]`` unit vectors.
    """
    _check_ham(ham)
    spins = check_spins(spins)
    if not tol > 0:
        raise MagsrError(f"tol must be > 0. Received: tol={tol}")
    if resolve_backend(backend) == "numba":
        from magsr_tf.physics import numba_backend as nb

        out = np.stack(
            [nb.relax_one(np.array(s, dtype=np.float64), ham, tol, max_iter)[0] for s in spins]
        )
    else:
        out = _relax_numpy(spins, ham, tol, max_iter)
    return _finish(out)


def _finish(spins: np.ndarray) -> np.ndarray:
    out = spins.astype(np.float32)
    out /= np.linalg.norm(out, axis=-1, keepdims=True)
    return out


def _anneal_chunk(ham, rngs, lattice, schedule, backend) -> np.ndarray:
    """Anneal the configurations of one chunk (runs in a worker process or in-process)."""
    if backend == "numba":
        from magsr_tf.physics import numba_backend as nb

        states = [nb.anneal_one(ham, rng, lattice, schedule) for rng in rngs]
        return _finish(np.stack(states))
    return _finish(_anneal_batch_numpy(ham, rngs, lattice, schedule))


def anneal(
    ham,
    rngs: Sequence[np.random.Generator],
    lattice: int = 128,
    schedule: Schedule | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Simulated annealing to zero temperature, one configuration per Generator.

    Args:
        ham: TypeI or TypeII.
        rngs: one Generator per configuration; configuration i depends only on rngs[i] (and the
            backend), whatever the batch size or worker count. The Generators are consumed:
            their state afterwards is unspecified (with workers > 1 they are copied to the
            workers and left as they were).
        lattice: even L >= 4.
        schedule: defaults to `default_schedule(ham)`.
        workers: processes (spawn start method, safe with TensorFlow loaded); 1 runs in-process.
        progress: called as ``progress(done, total)`` in configurations after each chunk.
        backend: "auto" (numba if available), "numpy" or "numba".

    Returns:
        float32 ``[len(rngs), L, L, 3]`` unit vectors with max torque below schedule.relax_tol.
    """
    _check_ham(ham)
    rngs = list(rngs)
    if not all(isinstance(r, np.random.Generator) for r in rngs):
        raise MagsrError("rngs must be a sequence of numpy.random.Generator objects.")
    if int(lattice) != lattice or lattice < 4 or lattice % 2:
        raise MagsrError(f"lattice must be an even integer >= 4. Received: lattice={lattice}")
    if int(workers) != workers or workers < 1:
        raise MagsrError(f"workers must be an integer >= 1. Received: workers={workers}")
    lattice = int(lattice)
    schedule = schedule or default_schedule(ham)
    backend = resolve_backend(backend)
    total = len(rngs)
    if total == 0:
        return np.zeros((0, lattice, lattice, 3), dtype=np.float32)
    chunk = DEFAULT_BATCH if backend == "numpy" else max(1, min(4, math.ceil(total / workers)))
    chunks = [rngs[i : i + chunk] for i in range(0, total, chunk)]
    results: list[np.ndarray | None] = [None] * len(chunks)
    done = 0
    if workers == 1 or len(chunks) == 1:
        for i, part in enumerate(chunks):
            results[i] = _anneal_chunk(ham, part, lattice, schedule, backend)
            done += len(part)
            if progress is not None:
                progress(done, total)
    else:
        # Spawned workers that exit if we are killed (no orphans holding memory).
        pool = spawn_pool(min(workers, len(chunks)))
        try:
            futures = {
                pool.submit(_anneal_chunk, ham, part, lattice, schedule, backend): i
                for i, part in enumerate(chunks)
            }
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                done += len(chunks[i])
                if progress is not None:
                    progress(done, total)
        except BaseException:
            # Interrupted or failed: drop the queued chunks instead of finishing them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return np.concatenate(results)


def thermal_energies(
    ham,
    rngs: Sequence[np.random.Generator],
    lattice: int,
    temperature: float,
    sweeps: int,
    over_relax: int = 1,
    backend: str = "auto",
    field_refresh: int = TYPE_II_FIELD_REFRESH,
) -> np.ndarray:
    """Energy per spin after each sweep of the sampler at a fixed temperature (no relaxation).

    Runs the annealer's moves (one heat-bath sweep + `over_relax` over-relaxation sweeps per
    step) from a random state, for equilibrium checks against a plain Metropolis sampler.
    `field_refresh` as in `Schedule` (numba backend, Type II).

    Returns:
        float64 ``[len(rngs), sweeps]``.
    """
    _check_ham(ham)
    backend = resolve_backend(backend)
    beta = 1.0 / float(temperature)
    rngs = list(rngs)
    out = np.empty((len(rngs), int(sweeps)))
    if backend == "numpy":
        q = npb.random_quarters(rngs, lattice)
        for k in range(sweeps):
            for parity in (0, 1):
                npb.heat_bath_half_sweep(q, parity, beta, ham, rngs)
            for _ in range(over_relax):
                for parity in (0, 1):
                    npb.over_relax_half_sweep(q, parity, beta, ham, rngs)
            out[:, k] = energy_per_spin(npb.from_quarters(q), ham)
        return out
    from magsr_tf.physics import numba_backend as nb
    from magsr_tf.physics import numba_kernels as nk

    betas = np.full(int(sweeps), beta)
    for i, rng in enumerate(rngs):
        s = npb.random_state(rng, lattice)
        state = nk.seed_state(rng)

        def record(k, s=s, i=i):
            out[i, k] = energy_per_spin(s[None], ham)[0]

        nb.run_sweeps(s, ham, betas, over_relax, state, field_refresh, after=record)
    return out
