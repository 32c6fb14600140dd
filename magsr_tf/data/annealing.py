"""Annealing the HR rows of a dataset, each configuration from its own seeded Generator.

Configuration ``i`` (global row index) is annealed from
``np.random.default_rng([seed, i])``, so the data do not depend on how the rows
are split into chunks, on the number of worker processes, or on interruptions.
:func:`anneal_rows` is the one code path of both the one-machine run
(:func:`local_rows`, chunk by chunk) and the Dask workers
(:func:`magsr_tf.data.cluster.anneal_task`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from magsr_tf.data.format import CHANNELS

TARGET_CHUNK_SECONDS = 60.0
"""Adaptive chunks: long enough to hide the worker-pool start-up (seconds), short
enough that an interruption loses about a minute of work."""

Progress = Callable[[int, int], None]
"""``progress(done, total)`` in configurations."""


def physics_modules() -> tuple[Any, Any]:
    """The annealer modules ``(hamiltonian, anneal)``, imported only when generating.

    They pull in numba, which readers of datasets (training, evaluation)
    should not pay for.
    """
    from magsr_tf.physics import anneal, hamiltonian

    return hamiltonian, anneal


def cores() -> int:
    """CPU cores this process may use (the affinity mask, if the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def anneal_rows(
    ham: Any,
    schedule: Any,
    backend: str,
    *,
    seed: int,
    lattice: int,
    start: int,
    stop: int,
    workers: int = 1,
    progress: Progress | None = None,
    total: int | None = None,
) -> np.ndarray:
    """Anneal configurations ``start .. stop - 1``, each from its own seeded Generator.

    Args:
        ham: the Hamiltonian (:func:`magsr_tf.physics.hamiltonian.make_hamiltonian`).
        schedule: the annealing :class:`magsr_tf.physics.anneal.Schedule`.
        backend: the annealer backend (``"numba"`` or ``"numpy"``).
        seed: the dataset's base seed; configuration ``i`` uses ``default_rng([seed, i])``.
        lattice: lattice size L.
        start: first global row index.
        stop: one past the last global row index.
        workers: annealing processes.
        progress: called as ``progress(start + annealed, total)``.
        total: the total passed to ``progress``; ``None`` means ``stop``.

    Returns:
        float32 HR states ``[stop - start, L, L, 3]``.

    Raises:
        RuntimeError: the annealer returned another shape or non-finite spins.
    """
    _, anneal_mod = physics_modules()
    total = stop if total is None else total
    rngs = [np.random.default_rng([seed, i]) for i in range(start, stop)]
    inner = None
    if progress is not None:

        def inner(annealed: int, _total: int) -> None:
            progress(start + annealed, total)

    hr = anneal_mod.anneal(
        ham,
        rngs,
        lattice=lattice,
        schedule=schedule,
        workers=workers,
        progress=inner,
        backend=backend,
    )
    hr = np.asarray(hr, dtype=np.float32)
    expected = (stop - start, lattice, lattice, CHANNELS)
    if hr.shape != expected or not np.isfinite(hr).all():
        raise RuntimeError(
            f"annealer returned shape {hr.shape} (expected {expected}) or non-finite "
            f"spins for rows {start}..{stop - 1}"
        )
    return hr


def _next_chunk(chunk: int, unit: int, rows: int, seconds: float) -> int:
    """Chunk size aiming at ``TARGET_CHUNK_SECONDS`` per step, in whole units,
    growing at most 4x per step (the first step also pays for start-up)."""
    if seconds <= 0:
        return min(4 * chunk, 64 * unit)
    wanted = TARGET_CHUNK_SECONDS * rows / seconds
    wanted = min(wanted, 4 * chunk, 64 * unit)
    return max(unit, int(wanted) // unit * unit)


def local_rows(
    ham: Any,
    schedule: Any,
    backend: str,
    *,
    seed: int,
    lattice: int,
    n: int,
    start: int,
    workers: int | None = None,
    chunk: int | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(a, b, hr)`` for rows ``start .. n - 1`` annealed on this machine, chunk by chunk.

    Args:
        ham: the Hamiltonian.
        schedule: the annealing schedule.
        backend: the annealer backend.
        seed: the dataset's base seed.
        lattice: lattice size L.
        n: total number of configurations (the last row is ``n - 1``).
        start: first row to anneal.
        workers: annealing processes; ``None`` means one per CPU core.
        chunk: configurations per step; ``None`` adapts it so that a step
            takes about :data:`TARGET_CHUNK_SECONDS`.
        progress: called as ``progress(done, n)`` as configurations finish.
    """
    _, anneal_mod = physics_modules()
    workers = workers or cores()
    # Whole batches for every worker; the data do not depend on the chunking.
    unit = int(anneal_mod.DEFAULT_BATCH) * workers
    step = chunk or unit
    done = start
    while done < n:
        stop = min(done + step, n)
        started = time.monotonic()
        hr = anneal_rows(
            ham,
            schedule,
            backend,
            seed=seed,
            lattice=lattice,
            start=done,
            stop=stop,
            workers=workers,
            progress=progress,
            total=n,
        )
        yield done, stop, hr  # the caller writes the rows before this resumes
        if chunk is None:
            step = _next_chunk(step, unit, stop - done, time.monotonic() - started)
        done = stop
