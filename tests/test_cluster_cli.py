"""`magsr-tf generate --cluster` against real Dask processes: faults and interruptions.

A `dask scheduler` and two `dask worker` processes run on localhost for the
module; the runs compare their files with a one-machine run of the same
command, array by array.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from conftest import (
    assert_one_line_error,
    cli_command,
    dataset_bytes,
    free_port,
    rows_done,
    run_cli,
    start_cli,
)

distributed = pytest.importorskip("distributed")

import magsr_tf  # noqa: E402
from magsr_tf.data.format import partial_path  # noqa: E402

# Type I on 16x16: ~6 ms per configuration, a run of 300 spans a few seconds.
N, N_TEST, LATTICE = 300, 10, 16
ARGS = ["generate", "typeI", "--n", str(N), "--test", str(N_TEST), "--lattice", str(LATTICE)]
OTHER_VERSION = "0.0.0-other"
START_TIMEOUT = 120.0


def _dask(*args: str, log: Path) -> subprocess.Popen:
    """A `dask` command in its own process group (the worker's nanny and its child die together)."""
    env = dict(os.environ, DASK_DISTRIBUTED__LOGGING__DISTRIBUTED="warning")
    with open(log, "ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _wait_for(condition, what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


class DaskCluster:
    """A scheduler and named one-thread workers, each its own process group."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.address = f"tcp://127.0.0.1:{free_port()}"
        port = self.address.rsplit(":", 1)[1]
        self.scheduler = _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--no-dashboard",
            log=folder / "scheduler.log",
        )
        self.workers: dict[str, subprocess.Popen] = {}
        self.client = None

    def start_worker(self, name: str) -> None:
        self.workers[name] = _dask(
            "worker",
            self.address,
            "--name",
            name,
            "--nthreads",
            "1",
            "--no-dashboard",
            log=self.folder / f"worker-{name}.log",
        )

    def connect(self) -> None:
        self.client = distributed.Client(self.address, timeout=START_TIMEOUT, set_as_default=False)

    def names(self) -> dict[str, str]:
        """Worker name -> address, as the scheduler sees them."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w["name"]): address for address, w in info.items()}

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        for proc in [*self.workers.values(), self.scheduler]:
            _stop(proc)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    cluster = DaskCluster(tmp_path_factory.mktemp("dask"))
    try:
        for name in ("a", "b"):
            cluster.start_worker(name)
        cluster.connect()
        _wait_for(lambda: set(cluster.names()) == {"a", "b"}, "two workers")
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The one-machine run of the same command."""
    cwd = tmp_path_factory.mktemp("reference")
    out = cwd / "reference.h5"
    result = run_cli(*ARGS, "--workers", "1", "--out", str(out), cwd=cwd, script=True)
    assert result.returncode == 0, result.stderr
    return out


def _assert_same_arrays(path: Path, reference: Path) -> None:
    got, want = dataset_bytes(path), dataset_bytes(reference)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name


@pytest.mark.slow  # 35-70 s with its cluster's start-up on the shared 2-core machine
def test_cluster_run_survives_a_killed_worker(dask_cluster, reference, tmp_path):
    out = tmp_path / "cluster.h5"
    proc = subprocess.Popen(
        cli_command() + ARGS + ["--cluster", dask_cluster.address, "--out", str(out)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = dask_cluster.names()["b"]

        def victim_busy_and_rows_written() -> bool:
            if proc.poll() is not None:
                return True
            done = rows_done(partial_path(out)) if partial_path(out).exists() else None
            busy = dask_cluster.client.processing(workers=[victim]).get(victim)
            return bool(done) and bool(busy)

        _wait_for(victim_busy_and_rows_written, "rows written and tasks on worker b")
        assert proc.poll() is None, "the run finished before a worker could be killed"
        lost = dask_cluster.client.processing(workers=[victim])[victim]
        os.killpg(dask_cluster.workers["b"].pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        # Bring the cluster back to two workers for the other tests.
        _stop(dask_cluster.workers.pop("b"))
        dask_cluster.start_worker("b")
        _wait_for(lambda: set(dask_cluster.names()) == {"a", "b"}, "worker b back")
    assert lost, "worker b held no task when it was killed"
    assert proc.returncode == 0, stderr
    assert f"{N} configurations annealed" in stdout
    _assert_same_arrays(out, reference)


@pytest.mark.slow  # two local clusters start and stop: about a minute on a busy machine
def test_interrupted_client_resumes_with_no_gap_or_duplicate(reference, tmp_path):
    import psutil

    out = tmp_path / "interrupted.h5"
    partial = partial_path(out)
    args = ARGS + ["--cluster", "local:2", "--out", str(out)]
    proc = start_cli(args, tmp_path)
    try:
        _wait_for(
            lambda: proc.poll() is not None or bool(partial.exists() and rows_done(partial)),
            "rows written",
        )
        assert proc.poll() is None, "the run finished before it could be interrupted"
        local_workers = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "run the same command again to continue" in stderr
    assert "Traceback" not in stderr
    gone, alive = psutil.wait_procs(local_workers, timeout=30)
    assert not alive, "the local cluster's workers outlived the client"

    with h5py.File(partial, "r") as f:
        n_done = int(f.attrs["n_done"])
        kept = f["hr"][:n_done]
    assert 0 < n_done < N
    result = run_cli(*args, cwd=tmp_path, script=True)
    assert result.returncode == 0, result.stderr
    assert f"{N - n_done} configurations annealed" in result.stdout
    _assert_same_arrays(out, reference)
    with h5py.File(out, "r") as f:
        assert f["hr"][:n_done].tobytes() == kept.tobytes()


def test_workers_with_another_version_fail_with_one_line(dask_cluster, tmp_path):
    def set_version(version: str) -> None:
        import magsr_tf

        magsr_tf.__version__ = version

    out = tmp_path / "never.h5"
    dask_cluster.client.run(set_version, OTHER_VERSION)
    try:
        result = run_cli(
            *ARGS, "--cluster", dask_cluster.address, "--out", str(out), cwd=tmp_path, script=True
        )
    finally:
        dask_cluster.client.run(set_version, magsr_tf.__version__)
    assert_one_line_error(result, f"runs magsr-tf {OTHER_VERSION}")
    assert f"this machine runs magsr-tf {magsr_tf.__version__}" in result.stderr
    assert not out.exists() and not partial_path(out).exists()


def test_unreachable_scheduler_fails_with_one_line_within_the_timeout(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_cli(
        *ARGS, "--cluster", address, "--cluster-timeout", "3", cwd=tmp_path, script=True
    )
    elapsed = time.monotonic() - started
    assert_one_line_error(result, f"cannot reach the Dask scheduler at {address} within 3 s")
    # The command's own start-up (Python, h5py, numba) comes on top of the 3 s.
    assert elapsed < 30
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # a scheduler and a worker of its own
def test_lost_scheduler_fails_with_one_line_and_keeps_the_rows(reference, tmp_path):
    doomed = DaskCluster(tmp_path)
    out = tmp_path / "lost.h5"
    partial = partial_path(out)
    try:
        doomed.start_worker("only")
        doomed.connect()
        _wait_for(lambda: set(doomed.names()) == {"only"}, "the worker")
        doomed.client.close()
        doomed.client = None
        proc = start_cli(ARGS + ["--cluster", doomed.address, "--out", str(out)], tmp_path)
        try:
            _wait_for(
                lambda: proc.poll() is not None or bool(partial.exists() and rows_done(partial)),
                "rows written",
            )
            assert proc.poll() is None, "the run finished before the scheduler could be killed"
            _stop(doomed.scheduler)
            _, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        doomed.close()
    assert proc.returncode == 1
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("Error: lost the Dask scheduler"), stderr
    assert "Traceback" not in stderr
    with h5py.File(partial, "r") as f:
        n_done = int(f.attrs["n_done"])
    assert 0 < n_done < N
    # The rows kept are final: the same command on one machine finishes the file.
    result = run_cli(*ARGS, "--workers", "1", "--out", str(out), cwd=tmp_path, script=True)
    assert result.returncode == 0, result.stderr
    _assert_same_arrays(out, reference)
