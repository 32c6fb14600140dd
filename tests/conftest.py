"""Shared test set-up and helpers: quiet TensorFlow, tiny deterministic inputs.

The helpers are plain functions; test modules import them with
``from conftest import run_cli`` (pytest puts tests/ on ``sys.path``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

CLI_MODULE = [sys.executable, "-m", "magsr_tf_cli.main"]


def free_port() -> int:
    """A localhost TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_command() -> list[str]:
    """The installed ``magsr-tf`` script, as a user runs it (``python -m`` if it is not on PATH)."""
    script = shutil.which("magsr-tf")
    return [script] if script else list(CLI_MODULE)


def run_cli(
    *args, cwd: Path | None = None, timeout: float = 600, script: bool = False
) -> subprocess.CompletedProcess:
    """Runs ``magsr-tf ARGS`` in a subprocess and captures its stdout and stderr as text.

    Args:
        *args: the command line after ``magsr-tf`` (paths are turned into strings).
        cwd: the working directory (default: this process's).
        timeout: seconds before the run fails the test.
        script: run the installed console script (:func:`cli_command`) rather than
            ``python -m magsr_tf_cli.main``.

    Returns:
        The finished process; a non-zero exit status raises nothing.
    """
    command = cli_command() if script else CLI_MODULE
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def start_cli(args, cwd) -> subprocess.Popen:
    """The installed CLI started in the background (stderr kept as text), to interrupt it."""
    return subprocess.Popen(
        cli_command() + list(args),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def call_main(monkeypatch, capsys, *args):
    """Runs ``magsr-tf ARGS`` in this process through ``main()``.

    Returns:
        ``(exit status, captured)``: the ``SystemExit`` code and pytest's captured
        stdout and stderr.
    """
    from magsr_tf_cli import main as cli_main

    monkeypatch.setattr(sys, "argv", ["magsr-tf", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
    return exit_info.value.code, capsys.readouterr()


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    """A CLI run failed with status 1 and one ``Error: ...`` line containing ``fragment``."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_bytes(path: Path) -> dict[str, bytes]:
    """The raw bytes of every dataset of an HDF5 file, by name."""
    import h5py

    found: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, obj[()].tobytes())
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return found


def rows_done(partial: Path) -> int | None:
    """``n_done`` of a dataset file another process is writing (None while unreadable)."""
    import h5py

    try:
        with h5py.File(partial, "r", locking=False) as f:
            return int(f.attrs["n_done"])
    except (OSError, KeyError, RuntimeError, ValueError):
        return None


def unit_maps(shape, seed: int) -> np.ndarray:
    """Random unit-vector maps (float32), e.g. LR inputs of shape ``(n, h, w, 3)``."""
    x = np.random.default_rng(seed).normal(size=shape).astype("float32")
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def tiny_typeI_dataset(path: Path, n: int, n_test: int, seed: int, phases: int = 0) -> Path:
    """A small Type I dataset (32x32 lattice, x4 and x8 LR) annealed in this process."""
    from magsr_tf.data.generation import GenerateConfig, generate

    config = GenerateConfig(
        kind="typeI",
        n=n,
        n_test=n_test,
        lattice=32,
        seed=seed,
        out=path,
        phases=phases,
        workers=1,
        ratios=(4, 8),
    )
    generate(config)
    return path
