"""`magsr-tf generate` as a user runs it: subprocesses, kill and resume, bad input."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import (
    assert_one_line_error,
    cli_command,
    dataset_bytes,
    file_digest,
    rows_done,
    run_cli,
    start_cli,
)

from magsr_tf.data.format import open_info, partial_path

# Type I on 16x16 with the default schedule: a few ms per configuration, so a
# run of N takes a few seconds and spans several chunks (16, then up to 64).
N = 200
N_TEST = 10
LATTICE = 16
ARGS = ["generate", "typeI", "--n", str(N), "--test", str(N_TEST), "--lattice", str(LATTICE)]
ARGS += ["--workers", "1"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted run with the default output path data/typeI.h5."""
    cwd = tmp_path_factory.mktemp("reference")
    result = run_cli(*ARGS, cwd=cwd, script=True)
    assert result.returncode == 0, result.stderr
    out = cwd / "data" / "typeI.h5"
    assert out.exists() and not partial_path(out).exists()
    assert "190 train + 10 test" in result.stdout
    assert "200 configurations annealed" in result.stdout
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_is_readable_and_resumes_to_identical_data(reference, tmp_path, sig):
    out = tmp_path / "killed.h5"
    partial = partial_path(out)
    args = ARGS + ["--out", str(out)]
    proc = start_cli(args, tmp_path)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            done = rows_done(partial) if partial.exists() else None
            if done is not None and 0 < done < N:
                proc.send_signal(sig)
                break
            time.sleep(0.02)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, "the run finished before it could be killed"
    if sig == signal.SIGTERM:  # handled like Ctrl-C: a clean exit with a hint
        assert proc.returncode == 130
        assert "run the same command again to continue" in stderr
        assert "Traceback" not in stderr

    # The interrupted file opens normally and its first n_done rows are final.
    assert not out.exists()
    with h5py.File(partial, "r") as f:
        n_done = int(f.attrs["n_done"])
        assert 0 < n_done < N and not bool(f.attrs["complete"])
        kept = f["hr"][:n_done]
    assert np.isfinite(kept).all()
    np.testing.assert_allclose(np.linalg.norm(kept, axis=-1), 1.0, atol=1e-5)

    result = run_cli(*args, cwd=tmp_path, script=True)
    assert result.returncode == 0, result.stderr
    assert not partial.exists()
    assert f"{N - n_done} configurations annealed" in result.stdout
    resumed, uninterrupted = dataset_bytes(out), dataset_bytes(reference)
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        assert resumed[name] == uninterrupted[name], name
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["hr"][:n_done], kept)
    assert open_info(out).n == N


def test_rerun_of_complete_dataset_says_so_and_keeps_file(reference):
    before = file_digest(reference)
    result = run_cli(*ARGS, cwd=reference.parent.parent, script=True)
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stdout
    assert file_digest(reference) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["generate", "typeIII", "--n", "20", "--test", "2"], "unknown dataset type"),
        (["generate", "typeI", "--n", "100", "--test", "100"], "n > n_test"),
        (["generate", "typeI", "--n", "20", "--test", "2", "--lattice", "33"], "must be even"),
        (["generate", "typeI", "--n", "20", "--test", "2", "--phases", "16"], "phases"),
        (["generate", "typeI", "--n", "20", "--test", "2", "--cluster", "sched:8786"], "tcp://"),
        (["generate", "typeI", "--n", "20", "--test", "2", "--cluster", "local:0"], "local:4"),
        (
            ["generate", "typeI", "--n", "20", "--test", "2", "--cluster", "local:2"]
            + ["--workers", "2"],
            "with a cluster its workers anneal",
        ),
    ],
    ids=[
        "unknown-type",
        "n-not-above-test",
        "odd-lattice",
        "too-many-phases",
        "cluster-address",
        "local-cluster-size",
        "workers-with-cluster",
    ],
)
def test_bad_parameters_fail_with_one_line(tmp_path, args, fragment):
    result = run_cli(*args, "--out", str(tmp_path / "x.h5"), cwd=tmp_path, script=True)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_path_fails_with_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    result = run_cli(*ARGS, "--out", str(blocker / "x.h5"), cwd=tmp_path, script=True)
    assert_one_line_error(result, "not a folder")
    assert blocker.read_text() == "in the way"


def test_existing_dataset_with_other_parameters_is_untouched(reference):
    before = file_digest(reference)
    args = ARGS[:3] + [str(N + 1)] + ARGS[4:] + ["--out", str(reference)]
    result = run_cli(*args, cwd=reference.parent, script=True)
    assert_one_line_error(result, "exists with other parameters (n: 200 in the file, 201")
    assert file_digest(reference) == before
    assert not partial_path(reference).exists()


def test_existing_foreign_file_is_untouched(tmp_path):
    foreign = tmp_path / "mine.h5"
    foreign.write_text("my notes")
    result = run_cli(*ARGS, "--out", str(foreign), cwd=tmp_path, script=True)
    assert_one_line_error(result, "not a readable HDF5 file")
    assert foreign.read_text() == "my notes"


@pytest.mark.slow
def test_repeated_sigkill_never_corrupts_committed_rows(tmp_path):
    """Kill at random moments of a run whose time goes largely into writing
    (8x8 lattice, LR phases): the file must always open, keep its committed
    rows, and finish identical to an uninterrupted run."""
    kill_seed, kills = 7, 15
    args = ["generate", "typeI", "--n", "2000", "--test", "10", "--lattice", "8"]
    args += ["--workers", "1", "--phases", "3"]
    reference = tmp_path / "reference.h5"
    assert run_cli(*args, "--out", str(reference), cwd=tmp_path, script=True).returncode == 0
    out = tmp_path / "killed.h5"
    partial = partial_path(out)
    delays = np.random.default_rng(kill_seed).uniform(0.0, 3.0, size=kills)
    committed: list[int] = []
    for delay in delays:
        proc = subprocess.Popen(cli_command() + args + ["--out", str(out)], cwd=tmp_path)
        deadline = time.monotonic() + 60
        while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        if out.exists():
            break
        with h5py.File(partial, "r") as f:
            n_done = int(f.attrs["n_done"])
            with h5py.File(reference, "r") as g:
                for name in ("hr", "lr/x4", "lr_phases/x4", "lr_phases/x4_offsets"):
                    assert f[name][:n_done].tobytes() == g[name][:n_done].tobytes(), name
        committed.append(n_done)
    assert committed and committed[-1] > 0, committed
    assert run_cli(*args, "--out", str(out), cwd=tmp_path, script=True).returncode == 0
    assert dataset_bytes(out) == dataset_bytes(reference)


def test_cli_defaults_match_the_library():
    from magsr_tf_cli import generate as generate_cli

    from magsr_tf.data import generation

    assert generate_cli._DEFAULT_N == generation.DEFAULT_N
    assert generate_cli._DEFAULT_SEED == generation.DEFAULT_SEED
