"""Worker processes that end with their parent.

The annealer runs its chunks in a spawn-start process pool. If the parent is killed outright
(SIGKILL, the out-of-memory killer), the pool's shutdown never runs: its workers would sit on
their inherited pipes forever, keeping multiprocessing's resource tracker alive with them. Every
worker therefore runs `exit_with_parent` as its pool initializer: on Linux the kernel sends it
SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every platform a daemon
thread polls the parent's pid and ends the process when it changes (re-parented) or is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ["POLL_SECONDS", "exit_with_parent", "spawn_pool"]

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
"""How often a worker checks that its parent is alive (seconds)."""
_PR_SET_PDEATHSIG = 1


def _parent_alive(parent: int) -> bool:
    if os.getppid() != parent:
        return False  # re-parented: the parent has exited
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (cannot be our parent then)
        return True
    return True


def _watch(parent: int, poll: float) -> None:
    while _parent_alive(parent):
        time.sleep(poll)
    # No cleanup to wait for: the parent that would read our results is gone.
    os._exit(1)


def exit_with_parent(parent: int | None = None, poll: float = POLL_SECONDS) -> None:
    """Make this (worker) process exit when `parent` (default: the current parent) is gone.

    Pool initializer; safe to call more than once. A parent that ends normally shuts its pool
    down first, so this only acts when the parent was killed.
    """
    parent = os.getppid() if parent is None else int(parent)
    if sys.platform.startswith("linux"):
        # PDEATHSIG follows the parent *thread* that started us: `spawn_pool` pools live within
        # one call of one thread (no max_tasks_per_child, so no worker started by another).
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the thread remains
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; polling the parent only")
    # The parent may have died before prctl took effect: the polling thread covers that race.
    thread = threading.Thread(target=_watch, args=(parent, poll), name="exit-with-parent")
    thread.daemon = True
    thread.start()


def spawn_pool(max_workers: int) -> ProcessPoolExecutor:
    """A spawn-start process pool (safe with TensorFlow loaded) whose workers end with us."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=max_workers,
        mp_context=context,
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
