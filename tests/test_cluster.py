"""Generation on a Dask cluster, through the library: same bits, resume, refusals.

One LocalCluster of two worker processes serves the module (the annealer's
numba kernels load once per worker); `tests/test_cluster_cli.py` runs the
command line against a real `dask scheduler` and `dask worker` processes.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import free_port

distributed = pytest.importorskip("distributed")

import magsr_tf  # noqa: E402
from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.data import cluster  # noqa: E402
from magsr_tf.data.format import partial_path  # noqa: E402
from magsr_tf.data.generation import GenerateConfig, generate  # noqa: E402
from magsr_tf.physics.anneal import Schedule  # noqa: E402

SEED = 314
N, N_TEST, LATTICE = 48, 4, 16
# Type II with a short schedule: the dipolar FFT path at a few tens of ms per state.
SHORT_TYPE_II = Schedule(t_start=1.5, t_end=0.02, sweeps=60)
OTHER_VERSION = "0.0.0-other"
# Attributes that record when, not what: they may differ between two runs.
CLOCK_ATTRS = {"created", "finished"}


@pytest.fixture(scope="module")
def address():
    """A local Dask cluster of two one-thread worker processes."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local.scheduler_address


def _config(kind: str, out: Path, **overrides) -> GenerateConfig:
    options = dict(kind=kind, n=N, n_test=N_TEST, lattice=LATTICE, seed=SEED, out=out)
    if kind == "typeII":
        options["schedule"] = SHORT_TYPE_II
    options.update(overrides)
    return GenerateConfig(**options)


def _contents(path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every dataset's bytes and every attribute except the clock times."""
    arrays: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                arrays[name] = obj.dtype.str.encode() + str(obj.shape).encode() + obj[()].tobytes()

        f.visititems(visit)
        attrs = {k: repr(v) for k, v in f.attrs.items() if k not in CLOCK_ATTRS}
    return arrays, attrs


def _assert_same_file(a: Path, b: Path) -> None:
    arrays_a, attrs_a = _contents(a)
    arrays_b, attrs_b = _contents(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name] == arrays_b[name], name
    assert attrs_a == attrs_b


@pytest.mark.parametrize(
    ("kind", "phases"), [("typeI", 3), ("typeII", 0)], ids=["typeI-phases", "typeII"]
)
def test_cluster_run_is_bit_identical_to_one_machine(address, tmp_path, kind, phases):
    alone = generate(_config(kind, tmp_path / "alone.h5", workers=1, phases=phases))
    counts: list[int] = []
    reports: list[tuple[int, int]] = []
    on_cluster = generate(
        _config(kind, tmp_path / "cluster.h5", cluster=address, phases=phases),
        progress=lambda done, total: reports.append((done, total)),
        on_workers=counts.append,
    )
    _assert_same_file(alone, on_cluster)
    assert counts and counts[-1] == 2
    assert reports[0] == (0, N) and reports[-1] == (N, N)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_fixed_task_size_gives_the_same_data(address, tmp_path):
    alone = generate(_config("typeI", tmp_path / "alone.h5", workers=1))
    # 7 does not divide 48: the last task is short.
    tasks = generate(_config("typeI", tmp_path / "tasks.h5", cluster=address, chunk=7))
    _assert_same_file(alone, tasks)


def _stop_after(rows: int):
    def progress(done: int, total: int) -> None:
        if done >= rows:
            raise KeyboardInterrupt

    return progress


def test_interrupted_cluster_run_resumes_without_gap_or_duplicate(address, tmp_path):
    reference = generate(_config("typeI", tmp_path / "reference.h5", workers=1))
    out = tmp_path / "resumed.h5"
    # Tasks of 5 rows, at most 4 unwritten (2 per worker): a 5th task
    # completes only after a write, so the interruption comes after rows
    # were written and while later tasks are still queued (they are cancelled).
    config = _config("typeI", out, cluster=address, chunk=5)
    with pytest.raises(KeyboardInterrupt):
        generate(config, progress=_stop_after(25))
    with h5py.File(partial_path(out), "r") as f:
        n_done = int(f.attrs["n_done"])
        assert 0 < n_done < N and n_done % 5 == 0
        assert np.isnan(f["hr"][n_done:]).all()  # nothing written past the marker
    reports: list[int] = []
    generate(config, progress=lambda done, total: reports.append(done))
    assert reports[0] == n_done
    _assert_same_file(reference, out)
    assert not partial_path(out).exists()


def test_one_machine_run_finishes_on_the_cluster(address, tmp_path):
    reference = generate(_config("typeI", tmp_path / "reference.h5", workers=1))
    out = tmp_path / "mixed.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(_config("typeI", out, workers=1, chunk=16), progress=_stop_after(20))
    with h5py.File(partial_path(out), "r") as f:
        assert int(f.attrs["n_done"]) == 16
    generate(_config("typeI", out, cluster=address))
    _assert_same_file(reference, out)


def test_workers_with_another_version_are_refused_before_any_work(address, tmp_path):
    def set_version(version: str) -> None:
        import magsr_tf

        magsr_tf.__version__ = version

    with distributed.Client(address, set_as_default=False) as client:
        client.run(set_version, OTHER_VERSION)
        try:
            out = tmp_path / "never.h5"
            with pytest.raises(MagsrError) as caught:
                generate(_config("typeI", out, cluster=address))
        finally:
            client.run(set_version, magsr_tf.__version__)
    message = str(caught.value)
    assert OTHER_VERSION in message and f"magsr-tf {magsr_tf.__version__}" in message
    assert "\n" not in message
    assert not out.exists() and not partial_path(out).exists()


def test_task_on_a_worker_with_another_version_refuses():
    # A worker that joins after the start-up check runs tasks of the client's version only.
    with pytest.raises(RuntimeError, match=OTHER_VERSION):
        cluster.anneal_task(None, None, None, "numba", 0, 1, OTHER_VERSION)


def test_refused_connection_is_one_line_error(tmp_path):
    out = tmp_path / "never.h5"
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(MagsrError, match="cannot reach the Dask scheduler at") as caught:
        generate(_config("typeI", out, cluster=address, cluster_timeout=2))
    assert time.monotonic() - started < 15
    assert address in str(caught.value) and "\n" not in str(caught.value)
    assert not partial_path(out).exists()


def test_silent_scheduler_times_out(tmp_path):
    """A port that accepts connections and never answers: the timeout ends the wait."""
    timeout = 2.0
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(MagsrError, match=f"within {timeout:g} s"):
            generate(_config("typeI", tmp_path / "x.h5", cluster=address, cluster_timeout=timeout))
        elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout + 10


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("local:3", cluster.ClusterSpec(address=None, local_workers=3)),
        (
            "tcp://10.0.0.5:8786",
            cluster.ClusterSpec(address="tcp://10.0.0.5:8786", local_workers=None),
        ),
        (" tls://sched.example:8786 ", cluster.ClusterSpec("tls://sched.example:8786", None)),
    ],
)
def test_parse_cluster(spec, expected):
    assert cluster.parse_cluster(spec) == expected


@pytest.mark.parametrize("spec", ["local:0", "local:x", "local:", "10.0.0.5:8786", "", "tcp://"])
def test_parse_cluster_rejects(spec):
    with pytest.raises(MagsrError, match="local:"):
        cluster.parse_cluster(spec)


def test_config_checks_cluster_options():
    with pytest.raises(MagsrError, match="with a cluster its workers anneal"):
        GenerateConfig(kind="typeI", n=10, n_test=1, workers=2, cluster="local:2")
    with pytest.raises(MagsrError, match="cluster_timeout"):
        GenerateConfig(kind="typeI", n=10, n_test=1, cluster="local:2", cluster_timeout=0)


@pytest.mark.parametrize(
    ("seconds", "remaining", "threads", "expected"),
    [
        (None, 1000, 2, 1),  # nothing measured yet: one configuration
        (10.0, 40_100, 2, 3),  # Type II at L = 128: about TASK_SECONDS of work
        (0.001, 40_100, 2, cluster.MAX_TASK_SIZE),
        (0.001, 20, 2, 5),  # near the end: a share for every thread
        (0.001, 1, 8, 1),
    ],
)
def test_task_size(seconds, remaining, threads, expected):
    assert cluster._task_size(seconds, remaining, threads) == expected
