"""Annealer throughput: spin updates per second, against a plain NumPy Metropolis in the same run.

Rows (one dict each, printed by ``magsr-tf bench anneal``):

- ``reference``: a straightforward one-array NumPy checkerboard Metropolis for Type I (uniform
  proposals, the field recomputed on the whole lattice with ``np.roll`` every half-sweep), one
  process, one configuration: the floor every figure is divided by (``ratio_to_reference``).
- ``numba`` / ``numpy`` rows for Type I and Type II: the annealer's moves (checkerboard heat bath
  + over-relaxation) in ``workers`` processes at once, each process annealing its own
  configurations (``batch`` per process). ``updates_per_s`` counts every site visit of a heat-bath
  or over-relaxation sweep, summed over processes, per wall second; ``heat_bath_per_s`` counts
  heat-bath visits only. ``updates_per_cpu_s`` sums each process's updates per CPU second of that
  process: the rate with the cores to ourselves (on a shared machine the wall rate is lower by
  the share of CPU we got). ``ratio_to_reference`` compares CPU rates.
- ``cpu_s_per_config``, ``paper_set_hours`` and ``paper_set_hours_wall``: CPU (and wall) seconds
  per configuration of complete default-schedule anneals (random start, cooling, T = 0
  relaxation) run concurrently in every process, and the projection to the paper's 40,100
  configurations with ``workers`` processes (from CPU time, and from wall time as measured).

Numbers measured while other jobs share the machine are noisy; compare ratios from one run.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from magsr_tf.physics.anneal import (
    DEFAULT_BATCH,
    Schedule,
    anneal,
    default_schedule,
    resolve_backend,
)
from magsr_tf.physics.hamiltonian import TypeI, make_hamiltonian
from magsr_tf.physics.workers import spawn_pool

logger = logging.getLogger(__name__)

PAPER_SET_SIZE = 40_100
DEFAULT_SWEEPS = {
    "reference": 50,
    ("numba", "typeI"): 400,
    ("numba", "typeII"): 100,
    ("numpy", "typeI"): 10,
    ("numpy", "typeII"): 5,
}
"""Sweeps per throughput measurement: each takes a few tenths of a CPU second at L = 128."""
BENCH_SEED = 20230811


def reference_metropolis(spins: np.ndarray, ham: TypeI, beta: float, rng, sweeps: int) -> None:
    """Straightforward checkerboard Metropolis on one ``[L, L, 3]`` array (in place).

    Uniform proposals on the sphere; the exchange + interfacial DMI field of the whole lattice is
    recomputed with np.roll before each half-sweep and only one sublattice may accept.
    """
    n = spins.shape[0]
    parity = (np.add.outer(np.arange(n), np.arange(n)) % 2)[..., None]
    d_vectors = {
        (1, 0): ham.D * np.array([0.0, 1.0, 0.0]),
        (-1, 0): ham.D * np.array([0.0, -1.0, 0.0]),
        (0, 1): ham.D * np.array([-1.0, 0.0, 0.0]),
        (0, -1): ham.D * np.array([1.0, 0.0, 0.0]),
    }
    for _ in range(sweeps):
        for p in (0, 1):
            field = np.zeros_like(spins)
            for (dx, dy), d_vec in d_vectors.items():
                neighbour = np.roll(spins, shift=(-dy, -dx), axis=(0, 1))
                field += ham.J * neighbour + np.cross(d_vec, neighbour)
            proposal = rng.normal(size=spins.shape)
            proposal /= np.linalg.norm(proposal, axis=-1, keepdims=True)
            d_e = -np.sum((proposal - spins) * field, axis=-1, keepdims=True)
            accept = (rng.random(d_e.shape) < np.exp(-beta * d_e)) & (parity == p)
            spins[...] = np.where(accept, proposal, spins)


def _reference_rate(lattice: int, sweeps: int) -> tuple[float, float]:
    """(updates per wall second, updates per CPU second) of `reference_metropolis`."""
    rng = np.random.default_rng(BENCH_SEED)
    spins = rng.normal(size=(lattice, lattice, 3))
    spins /= np.linalg.norm(spins, axis=-1, keepdims=True)
    reference_metropolis(spins, TypeI(), 2.0, rng, 1)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    reference_metropolis(spins, TypeI(), 2.0, rng, sweeps)
    updates = sweeps * lattice * lattice
    return updates / (time.perf_counter() - wall), updates / (time.process_time() - cpu)


def _sweep_worker(kind: str, lattice: int, sweeps: int, backend: str, batch: int, seed: int):
    """Time `sweeps` annealing sweeps (heat bath + over-relaxation) on `batch` configurations.

    Returns (heat-bath site updates, all site updates, wall seconds, CPU seconds); compilation
    is excluded.
    """
    from magsr_tf.physics import numba_backend as nb
    from magsr_tf.physics import numba_kernels as nk
    from magsr_tf.physics import numpy_backend as npb

    ham = make_hamiltonian(kind)
    refresh = default_schedule(ham).field_refresh
    schedule = Schedule(t_start=1.0, t_end=0.1, sweeps=sweeps, over_relax=1, field_refresh=refresh)
    rngs = [np.random.default_rng([seed, i]) for i in range(batch)]
    if backend == "numba":
        states = [(npb.random_state(rng, lattice), nk.seed_state(rng)) for rng in rngs]
        warm = states[0][0].copy()
        nb.run_sweeps(warm, ham, [1.0], 1, states[0][1].copy(), refresh)
        start, cpu = time.perf_counter(), time.process_time()
        for s, state in states:
            nb.run_sweeps(s, ham, 1.0 / schedule.temperatures(), 1, state, refresh)
    else:
        q = npb.random_quarters(rngs, lattice)
        start, cpu = time.perf_counter(), time.process_time()
        for temperature in schedule.temperatures():
            for parity in (0, 1):
                npb.heat_bath_half_sweep(q, parity, 1.0 / temperature, ham, rngs)
            for parity in (0, 1):
                npb.over_relax_half_sweep(q, parity, 1.0 / temperature, ham, rngs)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    heat_bath = batch * sweeps * lattice * lattice
    return heat_bath, 2 * heat_bath, seconds, cpu_seconds


def _config_worker(kind: str, lattice: int, backend: str, count: int, seed: int):
    """(wall, CPU) seconds per configuration of complete default-schedule anneals."""
    ham = make_hamiltonian(kind)
    anneal(ham, [np.random.default_rng([seed, 99])], 8, Schedule(1.0, 0.1, 2), backend=backend)
    wall, cpu = time.perf_counter(), time.process_time()
    anneal(ham, [np.random.default_rng([seed, i]) for i in range(count)], lattice, backend=backend)
    return (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count


def _run_parallel(fn, args_per_worker: list[tuple]) -> list:
    if len(args_per_worker) == 1:
        return [fn(*args_per_worker[0])]
    with spawn_pool(len(args_per_worker)) as pool:
        return list(pool.map(fn, *zip(*args_per_worker, strict=True)))


def bench_anneal(
    lattice: int = 128,
    sweeps: int | None = None,
    workers: int | None = None,
    backends: tuple[str, ...] = ("numba", "numpy"),
    projection: bool = True,
) -> list[dict]:
    """Measure annealer throughput; returns rows for a table (see the module docstring).

    Args:
        lattice: L.
        sweeps: sweeps per throughput measurement (default: `DEFAULT_SWEEPS`).
        workers: processes (default: one per core).
        backends: which annealer backends to measure.
        projection: also time complete default-schedule anneals and project the paper set.
    """
    workers = workers or os.cpu_count() or 1
    reference_wall, reference_cpu = _reference_rate(lattice, sweeps or DEFAULT_SWEEPS["reference"])
    nan = float("nan")
    rows = [
        {
            "model": "typeI",
            "backend": "reference",
            "batch": 1,
            "workers": 1,
            "updates_per_s": reference_wall,
            "updates_per_cpu_s": reference_cpu,
            "heat_bath_per_s": nan,
            "ratio_to_reference": 1.0,
            "cpu_s_per_config": nan,
            "paper_set_hours": nan,
            "paper_set_hours_wall": nan,
        }
    ]
    for backend in backends:
        backend = resolve_backend(backend)
        for kind in ("typeI", "typeII"):
            n_sweeps = sweeps or DEFAULT_SWEEPS[(backend, kind)]
            batch = 1 if backend == "numba" else DEFAULT_BATCH
            results = _run_parallel(
                _sweep_worker,
                [(kind, lattice, n_sweeps, backend, batch, BENCH_SEED + w) for w in range(workers)],
            )
            wall = max(r[2] for r in results)
            updates = sum(r[1] for r in results)
            row = {
                "model": kind,
                "backend": backend,
                "batch": batch,
                "workers": workers,
                "updates_per_s": updates / wall,
                "updates_per_cpu_s": sum(r[1] / r[3] for r in results),
                "heat_bath_per_s": sum(r[0] for r in results) / wall,
            }
            row["ratio_to_reference"] = row["updates_per_cpu_s"] / reference_cpu
            row.update(cpu_s_per_config=nan, paper_set_hours=nan, paper_set_hours_wall=nan)
            if projection and (backend == "numba" or kind == "typeI"):
                count = (2 if kind == "typeI" else 1) if backend == "numba" else DEFAULT_BATCH
                seconds = _run_parallel(
                    _config_worker,
                    [(kind, lattice, backend, count, BENCH_SEED + w) for w in range(workers)],
                )
                wall_per_config = float(np.mean([w for w, _ in seconds]))
                cpu_per_config = float(np.mean([c for _, c in seconds]))
                row["cpu_s_per_config"] = cpu_per_config
                row["paper_set_hours"] = PAPER_SET_SIZE * cpu_per_config / workers / 3600
                row["paper_set_hours_wall"] = PAPER_SET_SIZE * wall_per_config / workers / 3600
            logger.info("bench anneal row: %s", row)
            rows.append(row)
    return rows


def schedule_study(
    kind: str = "typeI",
    sweeps: tuple[int, ...] = (50, 100, 200, 400),
    over_relax: int = 1,
    count: int = 6,
    lattice: int = 128,
    t_start: float = 1.5,
    t_end: float = 0.02,
    seed: int = BENCH_SEED,
    field_refresh: int | None = None,
) -> list[dict]:
    """The measurement behind the default schedules: cost and result against sweep count.

    For each sweep count, `count` configurations are annealed one by one in this process with the
    numba backend (geometric cooling from `t_start` to `t_end`) and relaxed to T = 0. Costs are
    CPU seconds of this process (robust to other jobs on the machine). `field_refresh` as in
    `Schedule` (default: that of `default_schedule`).

    Returns:
        one row per sweep count: CPU seconds per configuration for annealing and relaxation,
        mean and max relaxation sweeps, mean energy per spin and its standard error, the
        structure-factor peak (mean, std; S_z for Type II) and, Type II, the wall fraction.
    """
    from magsr_tf.physics import numba_backend as nb
    from magsr_tf.physics import numba_kernels as nk
    from magsr_tf.physics import numpy_backend as npb
    from magsr_tf.physics.hamiltonian import energy_per_spin
    from magsr_tf.physics.observables import structure_factor_peak, wall_fraction

    ham = make_hamiltonian(kind)
    refresh = default_schedule(ham).field_refresh if field_refresh is None else field_refresh
    nb.anneal_one(ham, np.random.default_rng(seed), 8, Schedule(1.0, 0.1, 2))  # compile
    rows = []
    for n_sweeps in sweeps:
        schedule = Schedule(t_start, t_end, n_sweeps, over_relax, field_refresh=refresh)
        anneal_s, relax_s, relax_sweeps, states = [], [], [], []
        for i in range(count):
            rng = np.random.default_rng([seed, i])
            s = npb.random_state(rng, lattice)
            state = nk.seed_state(rng)
            start = time.process_time()
            nb.run_sweeps(s, ham, 1.0 / schedule.temperatures(), over_relax, state, refresh)
            middle = time.process_time()
            s, used = nb.relax_one(
                s, ham, schedule.relax_tol, schedule.relax_max_sweeps, near=refresh > 0
            )
            relax_s.append(time.process_time() - middle)
            anneal_s.append(middle - start)
            relax_sweeps.append(used)
            states.append(s.astype(np.float32))
        spins = np.stack(states)
        energies = energy_per_spin(spins, ham)
        peaks = structure_factor_peak(spins, 2 if kind == "typeII" else None)
        row = {
            "model": kind,
            "sweeps": n_sweeps,
            "over_relax": over_relax,
            "field_refresh": refresh,
            "anneal_cpu_s": float(np.mean(anneal_s)),
            "relax_cpu_s": float(np.mean(relax_s)),
            "relax_sweeps": float(np.mean(relax_sweeps)),
            "relax_sweeps_max": int(np.max(relax_sweeps)),
            "energy": float(energies.mean()),
            "energy_se": float(energies.std(ddof=1) / np.sqrt(count)) if count > 1 else 0.0,
            "q_peak": float(peaks.mean()),
            "q_peak_std": float(peaks.std()),
        }
        if kind == "typeII":
            walls = wall_fraction(spins)
            row["wall_fraction"] = float(walls.mean())
            row["wall_fraction_std"] = float(walls.std())
        logger.info("schedule study row: %s", row)
        rows.append(row)
    return rows


__all__ = ["bench_anneal", "reference_metropolis", "schedule_study", "PAPER_SET_SIZE"]
