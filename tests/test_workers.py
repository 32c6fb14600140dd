"""Annealing workers end with their parent: a SIGKILLed `anneal` leaves no orphan processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from magsr_tf.physics.workers import POLL_SECONDS

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process trees from /proc (Linux)"
)

# A Type II anneal in two spawned workers, long enough to be killed mid-way.
SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from magsr_tf.physics.anneal import Schedule, anneal
    from magsr_tf.physics.hamiltonian import TypeII

    rngs = [np.random.default_rng([7, i]) for i in range(4)]
    anneal(TypeII(), rngs, 16, Schedule(1.5, 0.02, 10_000_000), workers=2, backend="numba")
    """
)
START_TIMEOUT = 120.0
"""Seconds allowed for the two workers to start (imports under a loaded test run)."""
EXIT_TIMEOUT = 10 * POLL_SECONDS + 5.0


def _children(pid: int) -> set[int]:
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # field 4 of /proc/PID/stat: the parent pid
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited (its new parent has not reaped it yet)


def test_killed_anneal_leaves_no_worker_processes():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT])
    children: set[int] = set()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # Two pool workers plus, usually, multiprocessing's resource tracker.
        while len(children := _children(proc.pid)) < 2:
            assert proc.poll() is None, "the anneal ended before it could be killed"
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.2)
        time.sleep(1.0)  # let the workers run their initializer and start annealing
        children = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + EXIT_TIMEOUT
        while (alive := {pid for pid in children if _alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, f"processes left running after the parent was killed: {sorted(alive)}"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in children:  # the processes this test started, if any are left
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_polling_fallback_ends_a_process_whose_parent_is_gone():
    # Without PDEATHSIG (other platforms) the watcher thread alone must end the process.
    script = textwrap.dedent(
        """
        import sys, time
        from magsr_tf.physics import workers
        workers.sys.platform = "other"  # the portable path only
        workers.exit_with_parent(parent=int(sys.argv[1]), poll=0.05)
        time.sleep(60)
        """
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that is not our parent (and no longer runs)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(gone.pid)], timeout=EXIT_TIMEOUT + 30, check=False
    )
    assert proc.returncode == 1
