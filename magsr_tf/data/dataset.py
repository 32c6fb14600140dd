"""HDF5 datasets of annealed spin configurations and their low-resolution images.

Lee et al. (Sci. Rep. 13, 11526, 2023, "Data generation") anneal 40,100 spin
configurations per Hamiltonian type on a 128x128 periodic lattice, keep 40,000
for training and 100 for testing, and make the LR images with the Gaussian
downsizing op. :func:`generate` writes such a dataset; :func:`open_info`,
:func:`check_ratio` and :func:`check_finite` let training and evaluation code
validate one before use.

File layout (one file per Hamiltonian type)::

    hr                    float32 [N, L, L, 3]         ground-truth spins S = (Sx, Sy, Sz)
    lr/x{r}               float32 [N, L/r, L/r, 3]     downsample(hr, r)
    lr_phases/x{r}        float32 [N, P, L/r, L/r, 3]  downsample(roll(hr, -offset), r)
    lr_phases/x{r}_offsets  int16 [N, P, 2]            the (dy, dx) HR-pixel offsets

The last ``n_test`` rows are the test split. Every dataset is chunked per
configuration and compressed. Configuration ``i`` (global row index) is
annealed from ``np.random.default_rng([seed, i])`` and its phase offsets for
ratio ``r`` come from ``np.random.default_rng([seed, i, r])``, so the data do
not depend on how the rows are split into chunks, on the number of worker
processes, or on interruptions.

Resumability: a new dataset is written to ``OUT.partial``; after each chunk of
configurations the data are flushed and only then the attribute ``n_done`` is
advanced. A killed run therefore leaves a readable file whose first
``n_done`` rows are final; running the same command again continues from
there, and the file is renamed to ``OUT`` once complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import magsr_tf
from magsr_tf import RATIOS
from magsr_tf.data import cluster as dask_cluster
from magsr_tf.errors import MagsrError
from magsr_tf.ops.downsample import downsample

logger = logging.getLogger(__name__)

KINDS = ("typeI", "typeII")
"""Hamiltonian types: labyrinths with DMI (I), dipolar domains with thin walls (II)."""

DEFAULT_N = 40_100
"""Configurations per type in the paper: 40,000 training + 100 test."""

DEFAULT_N_TEST = 100
DEFAULT_LATTICE = 128

DEFAULT_SEED = 11526
"""Base seed of the published datasets (the paper's article number)."""

CHANNELS = 3
PARTIAL_SUFFIX = ".partial"
FORMAT = "magsr-tf dataset"
FORMAT_VERSION = 1

COMPRESSION: dict[str, Any] = {"compression": "lzf", "shuffle": True}
"""HDF5 filters of every dataset; chosen by read speed (see docs/datasets.md)."""

TARGET_CHUNK_SECONDS = 60.0
"""Adaptive chunks: long enough to hide the worker-pool start-up (seconds), short
enough that an interruption loses about a minute of work."""

READ_BLOCK_BYTES = 64 * 2**20
"""Rows are read in contiguous blocks of about this size: h5py serializes every
call behind one global lock, so one call per sample is the slow path."""

RNG_SCHEME = (
    "configuration i (global row index) is annealed from numpy.random.default_rng([seed, i]); "
    "its LR phase offsets for ratio r come from numpy.random.default_rng([seed, i, r])"
)
DOWNSAMPLING = (
    "magsr_tf.ops.downsample.downsample: periodic padding 11, normalized 23x23 Gaussian "
    "(sigma = 1 HR pixel), stride r; LR pixel k is centred on HR pixel k*r"
)

# Attributes that define the data; a resume or an "already complete" answer
# requires all of them to match.
_PARAMETER_KEYS = (
    "kind",
    "lattice",
    "n",
    "n_test",
    "seed",
    "ratios",
    "phases",
    "hamiltonian",
    "schedule",
    "backend",
)

Progress = Callable[[int, int], None]
"""``progress(done, total)`` in configurations."""

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
            ``TARGET_CHUNK_SECONDS``. Does not change the data.
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


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and split of a complete dataset file, read by :func:`open_info`.

    Attributes:
        path: the HDF5 file.
        kind: Hamiltonian type (``"unknown"`` if the file does not say).
        lattice: HR lattice size L.
        n: number of configurations (rows).
        n_test: size of the test split, the last ``n_test`` rows.
        ratios: ratios r with an ``lr/x{r}`` dataset, ascending.
        phases: extra LR phases per configuration (``lr_phases``), 0 if none.
        channels: spin components per pixel (3).
    """

    path: Path
    kind: str
    lattice: int
    n: int
    n_test: int
    ratios: tuple[int, ...]
    phases: int
    channels: int

    @property
    def n_train(self) -> int:
        """Rows ``[0, n_train)`` are the training split."""
        return self.n - self.n_test


def partial_path(out: Path | str) -> Path:
    """Where an unfinished generation of ``out`` lives."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def phase_offsets(seed: int, index: int, ratio: int, phases: int) -> np.ndarray:
    """The (dy, dx) HR-pixel offsets of the LR phases of one configuration.

    ``phases`` distinct offsets from [0, r)^2 without (0, 0), drawn from
    ``default_rng([seed, index, ratio])``; int16 ``[phases, 2]``.
    """
    rng = np.random.default_rng([seed, index, ratio])
    flat = rng.choice(ratio * ratio - 1, size=phases, replace=False) + 1
    return np.stack(np.divmod(flat, ratio), axis=-1).astype(np.int16)


def lr_phase_images(hr: np.ndarray, ratio: int, offsets: np.ndarray) -> np.ndarray:
    """LR images of one state ``hr`` [L, L, C] shifted by each offset: [P, L/r, L/r, C].

    Image p is ``downsample(roll(hr, -offsets[p]), ratio)``. A whole-pixel shift
    of a ground state on a periodic lattice is again a ground state, so these
    are genuine LR images of the same Hamiltonian. Computed as one stride-1
    pass of the same Gaussian filter, ``downsample(hr, 1)``, sampled at
    ``(k r + dy, l r + dx)``: the same taps and sums as the shifted downsample
    (equal to float32 rounding) for one filter pass instead of P.
    """
    blurred = downsample(hr[None], 1)[0]
    return np.stack([blurred[int(dy) :: ratio, int(dx) :: ratio] for dy, dx in offsets])


def _physics() -> tuple[Any, Any]:
    """The annealer modules, imported only when generating: they pull in numba,
    which readers of datasets (training, evaluation) should not pay for."""
    from magsr_tf.physics import anneal, hamiltonian

    return hamiltonian, anneal


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
    hamiltonian_mod, anneal_mod = _physics()
    return {
        "kind": config.kind,
        "lattice": int(config.lattice),
        "n": int(config.n),
        "n_test": int(config.n_test),
        "seed": int(config.seed),
        "ratios": tuple(config.ratios),
        "phases": int(config.phases),
        "hamiltonian": _json(hamiltonian_mod.hamiltonian_attrs(ham)),
        "schedule": _json(anneal_mod.schedule_attrs(schedule)),
        # The annealer's backends draw random numbers differently.
        "backend": backend,
    }


def _read_parameters(attrs: h5py.AttributeManager) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in _PARAMETER_KEYS:
        if key not in attrs:
            continue
        value = attrs[key]
        if isinstance(value, bytes):
            value = value.decode()
        if key == "ratios":
            value = tuple(int(r) for r in np.atleast_1d(value))
        elif isinstance(value, np.integer):
            value = int(value)
        found[key] = value
    return found


def _first_difference(found: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """``"n: 500 in the file, 40100 requested"`` for the first differing parameter."""
    for key in _PARAMETER_KEYS:
        have, want = found.get(key), wanted[key]
        if have != want:
            if key in ("hamiltonian", "schedule"):
                return f"{key} differs: {_short(have)} in the file, {_short(want)} requested"
            return f"{key}: {have!r} in the file, {want!r} requested"
    return None


def _short(text: Any, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while a chunk is written, then deliver them.

    An HDF5 file interrupted between its data and metadata writes may not open
    again; holding the signals for the few milliseconds of a write keeps the
    file consistent (SIGKILL cannot be held: the per-chunk flush covers it).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is None:  # installed outside Python: cannot be restored, leave it
            continue
        previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


def _create_layout(f: h5py.File, config: GenerateConfig, params: dict[str, Any]) -> None:
    n, size = config.n, config.lattice
    f.create_dataset(
        "hr",
        shape=(n, size, size, CHANNELS),
        dtype=np.float32,
        chunks=(1, size, size, CHANNELS),
        fillvalue=np.nan,
        **COMPRESSION,
    )
    for r in config.ratios:
        h = size // r
        f.create_dataset(
            f"lr/x{r}",
            shape=(n, h, h, CHANNELS),
            dtype=np.float32,
            chunks=(1, h, h, CHANNELS),
            fillvalue=np.nan,
            **COMPRESSION,
        )
        if config.phases:
            p = config.phases
            f.create_dataset(
                f"lr_phases/x{r}",
                shape=(n, p, h, h, CHANNELS),
                dtype=np.float32,
                chunks=(1, p, h, h, CHANNELS),
                fillvalue=np.nan,
                **COMPRESSION,
            )
            # Every dataset is chunked per row: a committed chunk is then never
            # rewritten (a rewrite moves it, and a kill mid-write could leave the
            # old row pointing at reused space).
            f.create_dataset(
                f"lr_phases/x{r}_offsets",
                shape=(n, p, 2),
                dtype=np.int16,
                chunks=(1, p, 2),
                fillvalue=-1,
                **COMPRESSION,
            )
    attrs = f.attrs
    attrs["format"] = FORMAT
    attrs["format_version"] = FORMAT_VERSION
    for key, value in params.items():
        attrs[key] = np.asarray(value, dtype=np.int64) if key == "ratios" else value
    attrs["version"] = magsr_tf.__version__
    attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    attrs["rng"] = RNG_SCHEME
    attrs["downsampling"] = DOWNSAMPLING
    attrs["test_split"] = "the last n_test rows"
    attrs["n_done"] = 0
    attrs["complete"] = False


def _check_layout(f: h5py.File, config: GenerateConfig) -> None:
    """Raise if an unfinished file lacks a dataset this run would write."""
    size, n = config.lattice, config.n
    expected = {"hr": (n, size, size, CHANNELS)}
    for r in config.ratios:
        expected[f"lr/x{r}"] = (n, size // r, size // r, CHANNELS)
        if config.phases:
            expected[f"lr_phases/x{r}"] = (n, config.phases, size // r, size // r, CHANNELS)
            expected[f"lr_phases/x{r}_offsets"] = (n, config.phases, 2)
    for name, shape in expected.items():
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset) or ds.shape != shape:
            raise MagsrError(
                f"{f.filename} cannot be resumed: dataset {name!r} is missing or has the wrong "
                "shape; delete it to start over"
            )


def _check_existing_output(out: Path, params: dict[str, Any]) -> None:
    """Return if ``out`` is a complete dataset with these parameters, else raise."""
    keep = "it is left untouched; choose another --out or delete it"
    if out.is_dir():
        raise MagsrError(f"{out} is a folder; give a file name. Received: out={str(out)!r}")
    try:
        with h5py.File(out, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise MagsrError(f"{out} exists and is not a magsr-tf dataset; {keep}")
            difference = _first_difference(_read_parameters(f.attrs), params)
            if difference:
                raise MagsrError(f"{out} exists with other parameters ({difference}); {keep}")
            if not bool(f.attrs.get("complete", False)):
                raise MagsrError(f"{out} exists but is incomplete; {keep}")
    except OSError as exc:
        raise MagsrError(
            f"{out} exists and is not a readable HDF5 file ({_error_line(exc)}); {keep}"
        ) from None


def _open_partial(
    partial: Path, config: GenerateConfig, params: dict[str, Any], version: str
) -> h5py.File:
    """Open the unfinished file for appending, creating it if there is none."""
    if partial.exists():
        try:
            f = h5py.File(partial, "r+")
        except OSError as exc:
            reason = _error_line(exc)
            if "lock" in reason.lower():
                raise MagsrError(
                    f"{partial} is being written by another process ({reason})"
                ) from None
            raise MagsrError(
                f"unfinished dataset {partial} cannot be opened ({reason}); delete it to start over"
            ) from None
        try:
            if f.attrs.get("format") != FORMAT:
                raise MagsrError(
                    f"{partial} is not a magsr-tf dataset; it is left untouched. Delete it "
                    "or choose another --out"
                )
            difference = _first_difference(_read_parameters(f.attrs), params)
            if difference:
                raise MagsrError(
                    f"unfinished dataset {partial} was started with other parameters "
                    f"({difference}); it is left untouched. Rerun with its parameters, "
                    "delete it, or choose another --out"
                )
            made_by = str(f.attrs.get("version", ""))
            if made_by != version:
                raise MagsrError(
                    f"unfinished dataset {partial} was started by magsr-tf {made_by}, this is "
                    f"{version}: the rest would not match. Delete it to start over"
                )
            _check_layout(f, config)
        except BaseException:
            f.close()
            raise
        logger.info("resuming %s at %d of %d", partial, int(f.attrs["n_done"]), config.n)
        return f
    # Build the empty layout under a scratch name so that a crash during setup
    # never leaves a half-made .partial behind.
    scratch = partial.with_name(f"{partial.name}.{os.getpid()}.tmp")
    try:
        # Plain open() first: its error names the cause ("Permission denied").
        with open(scratch, "xb"):
            pass
        with h5py.File(scratch, "w") as f:
            _create_layout(f, config, params)
        os.replace(scratch, partial)
    except OSError as exc:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise MagsrError(f"cannot write {partial}: {_os_reason(exc)}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            scratch.unlink()
        raise
    return h5py.File(partial, "r+")


def _make_folder(out: Path) -> None:
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise MagsrError(f"cannot write {out}: {ancestor} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MagsrError(f"cannot create the folder of {out}: {_os_reason(exc)}") from None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _error_line(exc)


def _publish(partial: Path, out: Path) -> None:
    """Move the finished file to ``out`` without ever replacing an existing file."""
    try:
        os.link(partial, out)
    except FileExistsError:
        raise MagsrError(
            f"{out} appeared while generating; it is left untouched and the finished "
            f"dataset stays in {partial}"
        ) from None
    except OSError:  # this filesystem has no hard links
        if out.exists():
            raise MagsrError(
                f"{out} appeared while generating; it is left untouched and the finished "
                f"dataset stays in {partial}"
            ) from None
        os.replace(partial, out)
        return
    partial.unlink()


def _lr_rows(hr: np.ndarray, first_index: int, config: GenerateConfig) -> dict[str, np.ndarray]:
    """LR datasets' rows for the HR rows ``hr`` (global indices from ``first_index``).

    Each configuration is downsized on its own, so its LR bits never depend on
    which other configurations share the chunk.
    """
    rows: dict[str, np.ndarray] = {}
    for r in config.ratios:
        rows[f"lr/x{r}"] = np.concatenate([downsample(state[None], r) for state in hr])
        if config.phases:
            offsets = np.stack(
                [
                    phase_offsets(config.seed, first_index + j, r, config.phases)
                    for j in range(len(hr))
                ]
            )
            rows[f"lr_phases/x{r}_offsets"] = offsets
            rows[f"lr_phases/x{r}"] = np.stack(
                [lr_phase_images(state, r, off) for state, off in zip(hr, offsets, strict=True)]
            )
    return rows


def _cores() -> int:
    """CPU cores this process may use (the affinity mask, if the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _anneal_rows(
    anneal_mod: Any,
    ham: Any,
    config: GenerateConfig,
    schedule: Any,
    backend: str,
    workers: int,
    start: int,
    stop: int,
    progress: Progress | None,
) -> np.ndarray:
    """Anneal configurations ``start .. stop - 1``, each from its own seeded Generator."""
    rngs = [np.random.default_rng([config.seed, i]) for i in range(start, stop)]
    inner = None
    if progress is not None:

        def inner(annealed: int, _total: int) -> None:
            progress(start + annealed, config.n)

    hr = anneal_mod.anneal(
        ham,
        rngs,
        lattice=config.lattice,
        schedule=schedule,
        workers=workers,
        progress=inner,
        backend=backend,
    )
    hr = np.asarray(hr, dtype=np.float32)
    expected = (stop - start, config.lattice, config.lattice, CHANNELS)
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


def _local_rows(
    anneal_mod: Any,
    ham: Any,
    config: GenerateConfig,
    schedule: Any,
    backend: str,
    start: int,
    progress: Progress | None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(a, b, hr)`` for rows ``start .. n - 1`` annealed on this machine, chunk by chunk."""
    workers = config.workers or _cores()
    # Whole batches for every worker; the data do not depend on the chunking.
    unit = int(anneal_mod.DEFAULT_BATCH) * workers
    chunk = config.chunk or unit
    done = start
    while done < config.n:
        stop = min(done + chunk, config.n)
        started = time.monotonic()
        hr = _anneal_rows(anneal_mod, ham, config, schedule, backend, workers, done, stop, progress)
        yield done, stop, hr  # the caller writes the rows before this resumes
        if config.chunk is None:
            chunk = _next_chunk(chunk, unit, stop - done, time.monotonic() - started)
        done = stop


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
    hamiltonian_mod, anneal_mod = _physics()
    ham = hamiltonian_mod.make_hamiltonian(config.kind)
    schedule = config.schedule if config.schedule is not None else anneal_mod.default_schedule(ham)
    backend = anneal_mod.resolve_backend("auto")
    params = _parameters(config, ham, schedule, backend)
    out, n = config.out, config.n
    partial = partial_path(out)
    if out.exists() or out.is_symlink():
        _check_existing_output(out, params)
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
        _make_folder(out)
        f = stack.enter_context(_open_partial(partial, config, params, magsr_tf.__version__))
        done = int(f.attrs["n_done"])
        if progress is not None:
            progress(done, n)
        if client is None:
            source = _local_rows(anneal_mod, ham, config, schedule, backend, done, progress)
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
            rows = _lr_rows(hr, start, config)
            rows["hr"] = hr
            with _interrupts_deferred():
                for name, data in rows.items():
                    f[name][start:stop] = data
                f.flush()  # the data reach the file before the marker says so
                f.attrs["n_done"] = stop
                f.flush()
            logger.debug("wrote rows %d..%d of %s", start, stop - 1, partial)
            done = stop
        with _interrupts_deferred():
            f.attrs["complete"] = True
            f.attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            f.flush()
    _publish(partial, out)
    logger.info("wrote %s", out)
    return out


def open_info(path: Path | str) -> DatasetInfo:
    """Validate a dataset file and describe it.

    Raises:
        MagsrError: with a one-line reason if the file is missing, not HDF5,
            lacks ``hr`` or ``lr``, or is an unfinished generation.
    """
    path = Path(path)
    if not path.exists():
        hint = "; make it with `magsr-tf generate`"
        if partial_path(path).exists():
            hint = (
                f"; an unfinished generation is at {partial_path(path)}: rerun the same "
                "`magsr-tf generate` command to finish it"
            )
        raise MagsrError(f"dataset file not found: {path}{hint}")
    if path.is_dir():
        raise MagsrError(f"dataset path is a folder, not an HDF5 file: {path}")
    try:
        with h5py.File(path, "r") as f:
            return _describe(f, path)
    except OSError as exc:
        raise MagsrError(f"{path} is not a readable HDF5 dataset ({_error_line(exc)})") from None


def _describe(f: h5py.File, path: Path) -> DatasetInfo:
    hr = f.get("hr")
    if not isinstance(hr, h5py.Dataset) or hr.ndim != 4 or hr.shape[1] != hr.shape[2]:
        raise MagsrError(f"{path} has no 'hr' dataset shaped [n, L, L, C]; not a magsr-tf dataset")
    lr = f.get("lr")
    ratios = tuple(
        sorted(
            int(m.group(1))
            for name in (lr.keys() if isinstance(lr, h5py.Group) else ())
            if (m := re.fullmatch(r"x(\d+)", name)) and isinstance(lr[name], h5py.Dataset)
        )
    )
    if not ratios:
        raise MagsrError(f"{path} has no LR images ('lr/x{{r}}' datasets); not a magsr-tf dataset")
    n, lattice, _, channels = hr.shape
    attrs = f.attrs
    if not bool(attrs.get("complete", True)) or int(attrs.get("n_done", n)) < n:
        raise MagsrError(
            f"{path} is an unfinished generation ({int(attrs.get('n_done', 0))} of {n} "
            "configurations); rerun the same `magsr-tf generate` command to finish it"
        )
    n_test = int(attrs.get("n_test", 0))
    if not 0 <= n_test < n:
        raise MagsrError(f"{path} has an invalid test split. Received: n_test={n_test}, n={n}")
    kind = attrs.get("kind", "unknown")
    return DatasetInfo(
        path=path,
        kind=kind.decode() if isinstance(kind, bytes) else str(kind),
        lattice=int(lattice),
        n=int(n),
        n_test=n_test,
        ratios=ratios,
        phases=int(attrs.get("phases", 0)),
        channels=int(channels),
    )


def check_ratio(info: DatasetInfo, ratio: int) -> None:
    """Raise :class:`MagsrError` unless ``lr/x{ratio}`` exists with shape [n, L/r, L/r, C]."""
    if ratio not in info.ratios:
        have = ", ".join(f"x{r}" for r in info.ratios)
        raise MagsrError(
            f"dataset has no LR images for ratio {ratio} (it has {have}): {info.path}. "
            f"Received: ratio={ratio}"
        )
    with h5py.File(info.path, "r") as f:
        shape = f[f"lr/x{ratio}"].shape
    side = info.lattice // ratio
    expected = (info.n, side, side, info.channels)
    if info.lattice % ratio or shape != expected:
        raise MagsrError(
            f"dataset has LR images for ratio {ratio} of the wrong size: {shape}, expected "
            f"{expected} for lattice {info.lattice}: {info.path}"
        )


def check_finite(path: Path | str, ratio: int, hr: bool = True) -> None:
    """Scan ``lr/x{ratio}``, its phases and (if ``hr``) ``hr`` for NaN/inf, block by block.

    The HR scan reads the whole ground truth (7.3 GiB for the paper's 40,100
    configurations): training, which never reads HR, may skip it.

    Raises:
        MagsrError: naming the dataset and the first row with a non-finite value.
    """
    path = Path(path)
    with h5py.File(path, "r") as f:
        names = [f"lr/x{ratio}", f"lr_phases/x{ratio}"] + (["hr"] if hr else [])
        for name in names:
            ds = f.get(name)
            if name.startswith("lr/") and not isinstance(ds, h5py.Dataset):
                raise MagsrError(f"dataset has no LR images for ratio {ratio}: {path}")
            if not isinstance(ds, h5py.Dataset):
                continue
            row_bytes = max(1, int(np.prod(ds.shape[1:])) * ds.dtype.itemsize)
            block = max(1, READ_BLOCK_BYTES // row_bytes)
            for start in range(0, ds.shape[0], block):
                data = ds[start : start + block]
                finite = np.isfinite(data.reshape(len(data), -1)).all(axis=1)
                if not finite.all():
                    row = start + int(np.argmin(finite))
                    raise MagsrError(f"non-finite value (NaN or inf) in {name} row {row}: {path}")
