"""Annealing on a Dask distributed cluster, for :func:`magsr_tf.data.generation.generate`.

``GenerateConfig(cluster="tcp://HOST:PORT")`` sends the anneals to an existing
Dask scheduler (started by dask-jobqueue on SLURM/PBS, by dask-kubernetes, or
by hand with ``dask scheduler`` / ``dask worker``); ``cluster="local:N"``
starts a ``LocalCluster`` of N one-thread worker processes on this machine.

Consecutive configurations are sent as tasks of a few configurations each;
configuration ``i`` depends only on ``default_rng([seed, i])``, so the data do
not depend on which worker anneals which task, on their order, or on tasks run
again after a worker died. The client receives the HR states, makes the LR
images itself (as the one-machine run does) and writes the rows in order into
the same resumable HDF5 file; results that arrive ahead of a slower task wait
in memory, and the number of tasks submitted but not yet written is bounded
(:data:`TASKS_PER_THREAD` per worker thread) so that this memory stays small.

``distributed`` is an optional dependency (``pip install "magsr-tf[cluster]"``);
it is imported only when a cluster is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import math
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

import magsr_tf
from magsr_tf.data.annealing import anneal_rows, physics_modules
from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the scheduler to answer before giving up."""

TASK_SECONDS = 30.0
"""Target run time of one task: short enough that a lost worker or an
interrupted client loses little, long enough that the scheduler's per-task
overhead (milliseconds) does not matter."""

MAX_TASK_SIZE = 64
"""Most configurations per task."""

TASKS_PER_THREAD = 2
"""Tasks submitted and not yet written, per worker thread: one running and one
waiting on every worker, so no worker idles between tasks."""

CHECKED_PACKAGES = ("numpy", "scipy", "numba")
"""Besides magsr-tf, packages whose version can change the annealed bits; a
worker with another version gets a warning (the data stay valid, but are not
bit for bit those of this machine)."""

_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")

ProgressCallback = Callable[[int, int], None]
WorkersCallback = Callable[[int], None]


@dataclass(frozen=True)
class ClusterSpec:
    """A parsed ``--cluster`` value.

    Attributes:
        address: scheduler address (``tcp://HOST:PORT``, ``tls://...``), or
            ``None`` for a local cluster.
        local_workers: worker processes of the local cluster, or ``None``.
    """

    address: str | None
    local_workers: int | None

    def __str__(self) -> str:
        return self.address or f"{LOCAL_PREFIX}{self.local_workers}"


def parse_cluster(spec: str) -> ClusterSpec:
    """Parse ``local:N`` or a scheduler address such as ``tcp://10.0.0.5:8786``.

    Raises:
        MagsrError: for anything else.
    """
    text = str(spec).strip()
    if text.startswith(LOCAL_PREFIX):
        count = text[len(LOCAL_PREFIX) :]
        if count.isdigit() and int(count) >= 1:
            return ClusterSpec(address=None, local_workers=int(count))
        raise MagsrError(
            f"a local cluster needs a positive number of workers, e.g. local:4. Received: {spec!r}"
        )
    if _ADDRESS.match(text):
        return ClusterSpec(address=text, local_workers=None)
    raise MagsrError(
        "cluster must be a Dask scheduler address such as tcp://HOST:8786, or local:N for N "
        f"worker processes on this machine. Received: {spec!r}"
    )


def _import_distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise MagsrError(
            'generating on a cluster needs Dask distributed: pip install "magsr-tf[cluster]"'
        ) from None


@contextlib.contextmanager
def _sigint_ignored_in_children() -> Iterator[None]:
    """Start local workers with Ctrl-C ignored (the disposition survives exec).

    Ctrl-C in a terminal reaches the whole process group: the client then stops
    cleanly and closes the cluster, while workers that got the signal too would
    die first with tracebacks of their own.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def connect(spec: ClusterSpec, timeout: float = CONNECT_TIMEOUT) -> Iterator[Any]:
    """A ``distributed.Client`` of the cluster; a local cluster is closed on exit.

    Raises:
        MagsrError: ``distributed`` missing, or the scheduler not answering
            within ``timeout`` seconds.
    """
    distributed = _import_distributed()
    cluster = None
    try:
        if spec.address is None:
            with _sigint_ignored_in_children():
                cluster = distributed.LocalCluster(
                    n_workers=spec.local_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    # The client reports what matters; the workers' own warnings
                    # (e.g. tasks cancelled on Ctrl-C) would only clutter the terminal.
                    silence_logs=logging.ERROR,
                )
            address = cluster.scheduler_address
        else:
            address = spec.address
        client = _client(distributed, address, timeout)
        try:
            yield client
        finally:
            with _quiet_dask():
                client.close()
    finally:
        if cluster is not None:
            with _quiet_dask():
                cluster.close()


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Silence Dask's loggers while closing: a client whose scheduler is gone
    logs the traceback of its cancelled reconnection attempt, after our error
    has already said what happened."""
    # Dask sets levels on several of its loggers, so disable logging as a whole
    # for the moment of the close (nothing of ours is logged meanwhile).
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)


def _client(distributed: Any, address: str, timeout: float) -> Any:
    """``distributed.Client(address)``, or MagsrError after ``timeout`` seconds.

    The Client's own timeout covers the TCP connection but not the handshake
    after it (distributed 2026.8 waits forever on a port that accepts and never
    answers), so the Client is made in a helper thread and abandoned if late.
    """
    made: dict[str, Any] = {}

    def make() -> None:
        try:
            made["client"] = distributed.Client(address, timeout=timeout, set_as_default=False)
        except BaseException as exc:  # handed to the caller's thread
            made["error"] = exc

    thread = threading.Thread(target=make, name="magsr-tf-dask-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if "client" in made:
        return made["client"]
    reason = "no answer" if thread.is_alive() else _first_line(made["error"])
    raise MagsrError(
        f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({reason})"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _versions_here() -> dict[str, str | None]:
    found: dict[str, str | None] = {"magsr-tf": magsr_tf.__version__}
    for name in CHECKED_PACKAGES:
        try:
            found[name] = importlib.import_module(name).__version__
        except ImportError:
            found[name] = None
    return found


def check_workers(client: Any, backend: str) -> int:
    """Check that every worker runs this magsr-tf version; return the worker count.

    Waits for a first worker if there is none yet (a batch system may still be
    starting them). Workers that join later are checked by each task.

    Raises:
        MagsrError: naming both versions when a worker runs another magsr-tf
            (or none), or lacks numba while this machine anneals with it.
    """
    if not client.nthreads():
        logger.warning("the Dask scheduler has no workers yet; waiting for one")
        client.wait_for_workers(1)

    # A nested function travels by value (cloudpickle), so it runs even on a
    # worker that cannot import magsr_tf and reports that instead of failing.
    def probe(packages: tuple[str, ...]) -> dict[str, str | None]:
        import importlib as _importlib

        found: dict[str, str | None] = {}
        for name, module in (("magsr-tf", "magsr_tf"),) + tuple((p, p) for p in packages):
            try:
                found[name] = str(_importlib.import_module(module).__version__)
            except ImportError:
                found[name] = None
        return found

    here = _versions_here()
    there = client.run(probe, CHECKED_PACKAGES, on_error="return")
    for worker, versions in sorted(there.items()):
        if isinstance(versions, BaseException):
            raise MagsrError(
                f"Dask worker {worker} could not report its versions ({_first_line(versions)})"
            )
        theirs = versions.get("magsr-tf")
        if theirs != here["magsr-tf"]:
            what = "has no magsr-tf installed" if theirs is None else f"runs magsr-tf {theirs}"
            raise MagsrError(
                f"Dask worker {worker} {what}, this machine runs magsr-tf {here['magsr-tf']}: "
                "install the same version on every worker (nothing was annealed)"
            )
        if backend == "numba" and versions.get("numba") is None:
            raise MagsrError(
                f"Dask worker {worker} has no numba, which this machine anneals with: install "
                "it on every worker (nothing was annealed)"
            )
        for name in CHECKED_PACKAGES:
            if versions.get(name) != here[name]:
                logger.warning(
                    "Dask worker %s has %s %s, this machine %s: the data stay valid but may "
                    "differ in the last bits from a run on this machine",
                    worker,
                    name,
                    versions.get(name),
                    here[name],
                )
    threads = client.nthreads()
    many = sorted(w for w, n in threads.items() if n > 1)
    if many:
        logger.warning(
            "%d Dask worker(s) have more than one thread; the annealer holds the GIL, so "
            "start workers with --nthreads 1 (and --nworkers N) to use every core",
            len(many),
        )
    return len(threads)


def anneal_task(
    config: Any, ham: Any, schedule: Any, backend: str, start: int, stop: int, version: str
) -> tuple[np.ndarray, float]:
    """Anneal configurations ``start .. stop - 1`` on a worker.

    Runs exactly the one-machine code path (:func:`magsr_tf.data.annealing.anneal_rows`)
    in one process. Returns the float32 HR states and the seconds taken.

    Raises:
        RuntimeError: this worker runs another magsr-tf version than the client
            (a worker that joined after the start-up check).
    """
    if magsr_tf.__version__ != version:
        raise RuntimeError(
            f"this worker runs magsr-tf {magsr_tf.__version__}, the client {version}: "
            "install the same version on every worker"
        )
    physics_modules()  # the first import (numba) is not part of the task's run time
    started = time.perf_counter()
    hr = anneal_rows(
        ham,
        schedule,
        backend,
        seed=config.seed,
        lattice=config.lattice,
        start=start,
        stop=stop,
        workers=1,
    )
    return hr, time.perf_counter() - started


def task_token(params: dict[str, Any]) -> str:
    """A short hash of the data-defining parameters, for readable task keys."""
    text = repr(sorted(params.items())) + magsr_tf.__version__
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _task_size(seconds_per_config: float | None, remaining: int, threads: int) -> int:
    """Configurations in the next task: about ``TASK_SECONDS`` of work, and
    small enough near the end that every thread still gets a share."""
    if seconds_per_config is None:
        size = 1  # measure first: a Type II configuration at L = 128 takes ~10 s
    else:
        size = int(TASK_SECONDS / max(seconds_per_config, 1e-6))
    share = math.ceil(remaining / (TASKS_PER_THREAD * max(threads, 1)))
    return max(1, min(size, share, MAX_TASK_SIZE, remaining))


def stream_rows(
    client: Any,
    config: Any,
    ham: Any,
    schedule: Any,
    backend: str,
    token: str,
    start: int,
    progress: ProgressCallback | None = None,
    on_workers: WorkersCallback | None = None,
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(a, b, hr)`` for rows ``start .. config.n - 1``, in order, annealed on the cluster.

    ``config.chunk``, if set, fixes the configurations per task; otherwise the
    task size adapts to about :data:`TASK_SECONDS`. Pending tasks are cancelled
    when the generator is closed or fails.

    Raises:
        MagsrError: a task failed (its error, one line), was lost with
            ``distributed.scheduler.allowed-failures`` workers in a row, or the
            connection to the scheduler was lost.
    """
    distributed = _import_distributed()
    n = config.n
    pending: dict[Any, tuple[int, int]] = {}
    ready: dict[int, tuple[int, np.ndarray]] = {}
    futures = distributed.as_completed(loop=client.loop)
    state = {"next": start, "completed": start, "threads": 0, "workers": 0, "checked": 0.0}
    per_config: list[float] = []

    def refresh_workers(force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - state["checked"] < 1.0:
            return
        state["checked"] = now
        threads = client.nthreads()
        state["threads"] = sum(threads.values())
        if len(threads) != state["workers"]:
            state["workers"] = len(threads)
            if on_workers is not None:
                on_workers(len(threads))

    def submit_more() -> None:
        window = TASKS_PER_THREAD * max(state["threads"], 1)
        while len(pending) + len(ready) < window and state["next"] < n:
            a = state["next"]
            if config.chunk is not None:
                size = min(config.chunk, n - a)
            else:
                size = _task_size(
                    float(np.median(per_config)) if per_config else None,
                    n - a,
                    state["threads"],
                )
            b = a + size
            future = client.submit(
                anneal_task,
                config,
                ham,
                schedule,
                backend,
                a,
                b,
                magsr_tf.__version__,
                key=f"magsr-tf-anneal-{token}-{a}-{b}",
                pure=False,
            )
            pending[future] = (a, b)
            futures.add(future)
            state["next"] = b

    written = start
    try:
        refresh_workers(force=True)
        submit_more()
        for future in futures:
            a, b = pending.pop(future)
            hr = _result(future, a, b, client)
            future.release()
            hr, seconds = hr
            per_config.append(seconds / (b - a))
            del per_config[:-16]  # recent tasks: the machine's load changes
            ready[a] = (b, hr)
            state["completed"] += b - a
            if progress is not None:
                progress(state["completed"], n)
            refresh_workers()
            while written in ready:
                b_ready, rows = ready.pop(written)
                yield written, b_ready, rows
                written = b_ready
            submit_more()
    finally:
        if pending:
            with contextlib.suppress(Exception):
                client.cancel(list(pending), force=True)
    if written != n:  # every range was submitted and came back: cannot happen
        raise RuntimeError(f"cluster stream ended at row {written} of {n}")


def _result(future: Any, a: int, b: int, client: Any) -> tuple[np.ndarray, float]:
    distributed = _import_distributed()
    rows = f"rows {a}..{b - 1}"
    try:
        return future.result()
    except distributed.KilledWorker:
        raise MagsrError(
            f"{rows} were lost with several workers in a row (Dask's allowed-failures); "
            "the rows written so far are kept: rerun the same command to continue"
        ) from None
    except distributed.client.FutureCancelledError:
        raise MagsrError(
            f"lost the Dask scheduler while annealing {rows} (status {client.status}); the rows "
            "written so far are kept: rerun the same command to continue"
        ) from None
    except (KeyboardInterrupt, MagsrError):
        raise
    except Exception as exc:
        raise MagsrError(
            f"annealing {rows} failed on the cluster: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
