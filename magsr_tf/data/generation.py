"""Generating a dataset: :class:`GenerateConfig` and :func:`generate`.

Lee et al. (Sci. Rep. 13, 11526, 2023, "Data generation") anneal 40,100 spin
configurations per Hamiltonian type on a 128x128 periodic lattice, keep 40,000
for training and 100 for testing, and make the LR images with the Gaussian
downsizing op. :func:`generate` writes such a dataset in the format of
:mod:`magsr_tf.data.format`: it anneals the rows (:mod:`magsr_tf.data.annealing`,
on this machine or on a Dask cluster, :mod:`magsr_tf.data.cluster`), makes their
LR images (:mod:`magsr_tf.data.lr_images`) and writes them chunk by chunk into a
resumable ``OUT.partial`` (:mod:`magsr_tf.data.resume`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import magsr_tf
import magsr_tf.data.cluster as dask_cluster
from magsr_tf.data.annealing import Progress, local_rows, physics_modules
from magsr_tf.data.format import KINDS, partial_path
from magsr_tf.data.lr_images import lr_rows
from magsr_tf.data.resume import (
    check_existing_output,
    make_folder,
    mark_complete,
    open_partial,
    publish,
    write_chunk,
)
from magsr_tf.errors import MagsrError
from magsr_tf.ops.kernels import RATIOS

logger = logging.getLogger(__name__)

DEFAULT_N = 40_100
"""Configurations per type in the paper: 40,000 training + 100 test."""

DEFAULT_N_TEST = 100
DEFAULT_LATTICE = 128

DEFAULT_SEED = 11526
"""Base seed of the published datasets (the paper's article number)."""

Workers = Callable[[int], None]
"""``on_workers(count)``: the number of Dask workers, when it changes."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def default_ratios(lattice: int) -> tuple[int, ...]:
    """The paper's ratios that divide ``lattice`` and leave an LR image of at least 2x2."""
    return tuple(r for r in RATIOS if lattice % r == 0 and lattice // r >= 2)


@dataclass(frozen=True)
class GenerateConfig:
    """What :func:`generate` writes.

    Attributes:
        kind: Hamiltonian type, ``"typeI"`` or ``"typeII"``.
        n: total number of configurations (training + test).
        out: the HDF5 file; ``None`` means ``data/{kind}.h5``.
        seed: base seed; configuration ``i`` uses ``default_rng([seed, i])``.
        n_test: number of test configurations, the last rows of the file.
        lattice: lattice size L (even).
        workers: annealing processes; ``None`` means one per CPU core. Does not
            change the data.
        ratios: LR ratios to store; ``None`` means those of (4, 8, 16) that
            divide L with L/r >= 2.
        phases: extra LR images per ratio, of the state shifted by P distinct
            non-zero whole-HR-pixel offsets in [0, r)^2 (a training
            augmentation; 0 stores none). At most r^2 - 1 for the smallest r.
        chunk: configurations annealed and written per step (the resume
            granularity); ``None`` adapts it so that a step takes about
            :data:`magsr_tf.data.annealing.TARGET_CHUNK_SECONDS`. Does not
            change the data.
        schedule: an annealing :class:`magsr_tf.physics.anneal.Schedule`;
            ``None`` means the default schedule of the Hamiltonian.
        cluster: ``None`` anneals on this machine; a Dask scheduler address
            (``tcp://HOST:PORT``) anneals on that cluster; ``local:N`` starts a
            local Dask cluster of N worker processes (see
            :mod:`magsr_tf.data.cluster`). Does not change the data. With a cluster,
            ``chunk`` (if set) is the number of configurations per task.
        cluster_timeout: seconds to wait for the Dask scheduler to answer.
    """

    kind: str
    n: int = DEFAULT_N
    out: Path | None = None
    seed: int = DEFAULT_SEED
    n_test: int = DEFAULT_N_TEST
    lattice: int = DEFAULT_LATTICE
    workers: int | None = None
    ratios: tuple[int, ...] | None = None
    phases: int = 0
    chunk: int | None = None
    schedule: Any = None
    cluster: str | None = None
    cluster_timeout: float = dask_cluster.CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise MagsrError(
                f"unknown dataset type; expected one of {', '.join(KINDS)}. "
                f"Received: kind={self.kind!r}"
            )
        for name in ("n", "n_test", "seed", "lattice", "phases"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                raise MagsrError(
                    f"{name} must be a non-negative integer. Received: {name}={value!r}"
                )
        if self.n <= self.n_test:
            raise MagsrError(
                "the number of configurations must exceed the test split "
                f"(n > n_test). Received: n={self.n}, n_test={self.n_test}"
            )
        if self.lattice % 2:
            raise MagsrError(f"lattice size must be even. Received: lattice={self.lattice}")
        for name in ("workers", "chunk"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise MagsrError(
                    f"{name} must be a positive integer or None. Received: {name}={value!r}"
                )
        if self.cluster is not None:
            dask_cluster.parse_cluster(self.cluster)
            if self.workers is not None:
                raise MagsrError(
                    "workers sets the processes of a one-machine run; with a cluster its "
                    f"workers anneal. Received: workers={self.workers}, cluster={self.cluster!r}"
                )
        timeout = self.cluster_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise MagsrError(
                f"cluster_timeout must be a positive number of seconds. Received: {timeout!r}"
            )
        out = Path(f"data/{self.kind}.h5") if self.out is None else Path(self.out)
        object.__setattr__(self, "out", out)
        if self.ratios is None:
            ratios = default_ratios(self.lattice)
            if not ratios:
                raise MagsrError(
                    f"no ratio of {RATIOS} leaves an LR image of at least 2x2 pixels on "
                    f"this lattice. Received: lattice={self.lattice}"
                )
        else:
            ratios = tuple(sorted(set(self.ratios)))
            bad = [
                r
                for r in ratios
                if not _is_int(r) or r < 2 or self.lattice % r or self.lattice // r < 2
            ]
            if not ratios or bad:
                raise MagsrError(
                    "every ratio must divide the lattice size and leave at least 2x2 LR "
                    f"pixels. Received: ratios={self.ratios!r}, lattice={self.lattice}"
                )
        object.__setattr__(self, "ratios", tuple(int(r) for r in ratios))
        max_phases = min(self.ratios) ** 2 - 1
        if self.phases > max_phases:
            raise MagsrError(
                f"phases must be at most r^2 - 1 = {max_phases} for ratio {min(self.ratios)} "
                f"(the distinct non-zero offsets). Received: phases={self.phases}"
            )


def _json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if dataclasses.is_dataclass(obj):
            return dataclasses.asdict(obj)
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot store {type(obj).__name__} as JSON")

    return json.dumps(value, sort_keys=True, default=default)


def _parameters(config: GenerateConfig, ham: Any, schedule: Any, backend: str) -> dict[str, Any]:
    hamiltonian_mod, anneal_mod = physics_modules()
    return {
        "kind": config.kind,
        "lattice": int(config.lattice),
        "n": int(config.n),
        "n_test": int(config.n_test),
        "seed": int(config.seed),
        "ratios": tuple(config.ratios),
        "phases": int(config.phases),
        "hamiltonian": _json(hamiltonian_mod.hamiltonian_attrs(ham)),
        "schedule": _json(anneal_mod.schedule_attrs(schedule, ham)),
        # The annealer's backends draw random numbers differently.
        "backend": backend,
    }


def generate(
    config: GenerateConfig,
    progress: Progress | None = None,
    on_workers: Workers | None = None,
) -> Path:
    """Anneal ``config.n`` configurations and write the HDF5 dataset ``config.out``.

    Resumes an unfinished ``OUT.partial`` made with the same parameters. If
    ``OUT`` already holds a complete dataset with the same parameters nothing
    is done. Never overwrites an existing file. With ``config.cluster`` the
    anneals run on a Dask cluster (:mod:`magsr_tf.data.cluster`); the file is the
    same, bit for bit.

    Args:
        config: what to generate.
        progress: called as ``progress(done, total)`` in configurations, first
            with the starting point (0, the resumed count, or ``total`` when the
            file is already complete), then as configurations finish annealing
            (the count on disk, attribute ``n_done``, follows chunk by chunk).
        on_workers: with a cluster, called with the number of Dask workers at
            the start and whenever it changes.

    Returns:
        The path of the complete dataset.

    Raises:
        MagsrError: bad output path, an existing file with other parameters,
            or (with a cluster) an unreachable scheduler, workers with another
            magsr-tf version, or a failed task.
    """
    hamiltonian_mod, anneal_mod = physics_modules()
    ham = hamiltonian_mod.make_hamiltonian(config.kind)
    schedule = config.schedule if config.schedule is not None else anneal_mod.default_schedule(ham)
    backend = anneal_mod.resolve_backend("auto")
    params = _parameters(config, ham, schedule, backend)
    out, n = config.out, config.n
    partial = partial_path(out)
    if out.exists() or out.is_symlink():
        check_existing_output(out, params)
        logger.info("%s is already complete", out)
        if progress is not None:
            progress(n, n)
        return out

    with contextlib.ExitStack() as stack:
        client = None
        if config.cluster is not None:
            spec = dask_cluster.parse_cluster(config.cluster)
            # Connect and check the workers' versions before the file is
            # touched: a refusal then costs nothing.
            client = stack.enter_context(dask_cluster.connect(spec, config.cluster_timeout))
            workers = dask_cluster.check_workers(client, backend)
            logger.info("annealing on the Dask cluster %s (%d workers)", spec, workers)
        make_folder(out)
        f = stack.enter_context(open_partial(partial, params, magsr_tf.__version__))
        done = int(f.attrs["n_done"])
        if progress is not None:
            progress(done, n)
        if client is None:
            source = local_rows(
                ham,
                schedule,
                backend,
                seed=config.seed,
                lattice=config.lattice,
                n=n,
                start=done,
                workers=config.workers,
                chunk=config.chunk,
                progress=progress,
            )
        else:
            source = dask_cluster.stream_rows(
                client,
                config,
                ham,
                schedule,
                backend,
                dask_cluster.task_token(params),
                done,
                progress,
                on_workers,
            )
        stack.callback(source.close)  # cancels a cluster's pending tasks
        for start, stop, hr in source:
            if start != done:  # the writer relies on rows arriving in order
                raise RuntimeError(f"rows {start}..{stop - 1} arrived while expecting row {done}")
            rows = lr_rows(hr, start, config.ratios, config.phases, config.seed)
            rows["hr"] = hr
            write_chunk(f, start, stop, rows)
            logger.debug("wrote rows %d..%d of %s", start, stop - 1, partial)
            done = stop
        mark_complete(f)
    publish(partial, out)
    logger.info("wrote %s", out)
    return out
