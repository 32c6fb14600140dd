"""Resumable writing of a dataset file: ``OUT.partial``, chunk commits, publish by rename.

A new dataset is written to ``OUT.partial``; after each chunk of
configurations the data are flushed and only then the attribute ``n_done`` is
advanced (:func:`write_chunk`). A killed run therefore leaves a readable file
whose first ``n_done`` rows are final; running the same command again
continues from there (:func:`open_partial` checks that the parameters match),
and the file is moved to ``OUT`` once complete (:func:`publish`), never
replacing an existing file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from magsr_tf.data.format import (
    FORMAT,
    check_layout,
    create_layout,
    error_line,
    first_difference,
    read_parameters,
)
from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
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


def write_chunk(f: h5py.File, start: int, stop: int, rows: dict[str, np.ndarray]) -> None:
    """Write rows ``start .. stop - 1`` of every dataset, then advance ``n_done`` to ``stop``."""
    with interrupts_deferred():
        for name, data in rows.items():
            f[name][start:stop] = data
        f.flush()  # the data reach the file before the marker says so
        f.attrs["n_done"] = stop
        f.flush()


def mark_complete(f: h5py.File) -> None:
    """Mark a file whose rows are all written as complete."""
    with interrupts_deferred():
        f.attrs["complete"] = True
        f.attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        f.flush()


def check_existing_output(out: Path, params: dict[str, Any]) -> None:
    """Return if ``out`` is a complete dataset with these parameters, else raise."""
    keep = "it is left untouched; choose another --out or delete it"
    if out.is_dir():
        raise MagsrError(f"{out} is a folder; give a file name. Received: out={str(out)!r}")
    try:
        with h5py.File(out, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise MagsrError(f"{out} exists and is not a magsr-tf dataset; {keep}")
            difference = first_difference(read_parameters(f.attrs), params)
            if difference:
                raise MagsrError(f"{out} exists with other parameters ({difference}); {keep}")
            if not bool(f.attrs.get("complete", False)):
                raise MagsrError(f"{out} exists but is incomplete; {keep}")
    except OSError as exc:
        raise MagsrError(
            f"{out} exists and is not a readable HDF5 file ({error_line(exc)}); {keep}"
        ) from None


def open_partial(partial: Path, params: dict[str, Any], version: str) -> h5py.File:
    """Open the unfinished file for appending, creating it if there is none.

    Args:
        partial: the ``OUT.partial`` path.
        params: the data-defining parameters of this run
            (:data:`magsr_tf.data.format.PARAMETER_KEYS`); a file to resume must match them.
        version: this magsr-tf version; a file to resume must have been started by it.

    Raises:
        MagsrError: the file is locked, unreadable, foreign, or was started
            with other parameters or another version.
    """
    if partial.exists():
        try:
            f = h5py.File(partial, "r+")
        except OSError as exc:
            reason = error_line(exc)
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
            difference = first_difference(read_parameters(f.attrs), params)
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
            check_layout(f, params)
        except BaseException:
            f.close()
            raise
        logger.info("resuming %s at %d of %d", partial, int(f.attrs["n_done"]), params["n"])
        return f
    # Build the empty layout under a scratch name so that a crash during setup
    # never leaves a half-made .partial behind.
    scratch = partial.with_name(f"{partial.name}.{os.getpid()}.tmp")
    try:
        # Plain open() first: its error names the cause ("Permission denied").
        with open(scratch, "xb"):
            pass
        with h5py.File(scratch, "w") as f:
            create_layout(f, params)
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


def make_folder(out: Path) -> None:
    """Create the folder of ``out``, with a one-line error if that is impossible."""
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
    return exc.strerror or error_line(exc)


def publish(partial: Path, out: Path) -> None:
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
