"""Atomic, umask-respecting writers: every file magsr-tf writes goes through here.

A file is written under a hidden temporary name in its own folder and renamed
onto its target only when complete (``os.replace`` is atomic on POSIX), so an
interrupted run never leaves a half-written result, and an existing file is
either kept or replaced whole. ``tempfile`` creates files with mode 0600 and
folders with 0700 whatever the umask; the writers set the modes a plain
``open()`` / ``mkdir()`` would have given (0666 / 0777 less the umask), so a
TF Serving process of another user or a shared output folder can read them.

JSON is strict (RFC 8259 has no NaN): non-finite floats are written as the
strings ``"nan"``, ``"inf"``, ``"-inf"`` by default, or refused.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from magsr_tf.errors import MagsrError

TEMP_PREFIX = ".tmp-"
"""Every temporary name starts with this (hidden, and easy to find and clean)."""
NAN_POLICIES = ("string", "error")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no read-only query elsewhere: set and restore at once
    os.umask(mask)
    return mask


def apply_umask(path: str | Path) -> Path:
    """Gives ``path`` (a file, or a folder and everything in it) the modes of plain creation."""
    path = Path(path)
    mask = current_umask()
    if path.is_dir():
        for folder, _, files in os.walk(path):
            os.chmod(folder, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o666 & ~mask)
        return path
    os.chmod(path, 0o666 & ~mask)
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds.

    On any exception (``KeyboardInterrupt`` included) the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TEMP_PREFIX}{path.stem}-", suffix=path.suffix
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        apply_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes bytes atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Writes UTF-8 text atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any, nan: str = "string") -> Any:
    """NumPy scalars/arrays and paths to plain Python; non-finite floats by ``nan``.

    Args:
        obj: nested dicts, lists, tuples, arrays and scalars.
        nan: ``"string"`` writes ``"nan"``, ``"inf"``, ``"-inf"``; ``"error"``
            raises on them.

    Raises:
        MagsrError: ``nan="error"`` and a non-finite float, or an unknown policy.
    """
    if nan not in NAN_POLICIES:
        raise MagsrError(f"nan must be one of {NAN_POLICIES}. Received: nan={nan!r}")
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, nan) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nan) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), nan)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        if nan == "error":
            raise MagsrError(f"refusing to write the non-finite value {obj} to JSON")
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, data: Any, indent: int = 1, nan: str = "string") -> Path:
    """Writes strict JSON atomically (see :func:`to_jsonable` for ``nan``); returns ``path``."""
    text = json.dumps(to_jsonable(data, nan), indent=indent, allow_nan=False) + "\n"
    return write_text(path, text)


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Writes an array as ``.npy`` atomically; returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(array))
    return Path(path)


def write_figure(path: str | Path, fig, **savefig: Any) -> Path:
    """Saves a matplotlib figure as PNG atomically and closes it; returns ``path``."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **savefig)
    finally:
        plt.close(fig)
    return Path(path)
