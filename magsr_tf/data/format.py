"""The HDF5 file format of magsr-tf datasets: layout, attributes and validation.

File layout (one file per Hamiltonian type)::

    hr                    float32 [N, L, L, 3]         ground-truth spins S = (Sx, Sy, Sz)
    lr/x{r}               float32 [N, L/r, L/r, 3]     downsample(hr, r)
    lr_phases/x{r}        float32 [N, P, L/r, L/r, 3]  downsample(roll(hr, -offset), r)
    lr_phases/x{r}_offsets  int16 [N, P, 2]            the (dy, dx) HR-pixel offsets

The last ``n_test`` rows are the test split. Every dataset is chunked per
configuration and compressed. The attributes record the data-defining
parameters (:data:`PARAMETER_KEYS`), how the data were made
(:data:`RNG_SCHEME`, :data:`DOWNSAMPLING`) and how far an unfinished
generation got (``n_done``, ``complete``).

:func:`open_info`, :func:`check_ratio` and :func:`check_finite` let training
and evaluation code validate a file before use; :func:`create_layout` and
:func:`check_layout` serve the writer (:mod:`magsr_tf.data.generation`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import magsr_tf
from magsr_tf.errors import MagsrError

KINDS = ("typeI", "typeII")
"""Hamiltonian types: labyrinths with DMI (I), dipolar domains with thin walls (II)."""

CHANNELS = 3
PARTIAL_SUFFIX = ".partial"
FORMAT = "magsr-tf dataset"
FORMAT_VERSION = 1

COMPRESSION: dict[str, Any] = {"compression": "lzf", "shuffle": True}
"""HDF5 filters of every dataset; chosen by read speed (see docs/datasets.md)."""

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

PARAMETER_KEYS = (
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
"""Attributes that define the data; a resume or an "already complete" answer
requires all of them to match."""


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


def error_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name if it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_parameters(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """The :data:`PARAMETER_KEYS` attributes a file has, as Python values."""
    found: dict[str, Any] = {}
    for key in PARAMETER_KEYS:
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


def first_difference(found: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    """``"n: 500 in the file, 40100 requested"`` for the first differing parameter."""
    for key in PARAMETER_KEYS:
        have, want = found.get(key), wanted[key]
        if have != want:
            if key in ("hamiltonian", "schedule"):
                return f"{key} differs: {_short(have)} in the file, {_short(want)} requested"
            return f"{key}: {have!r} in the file, {want!r} requested"
    return None


def _short(text: Any, limit: int = 80) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def create_layout(f: h5py.File, params: dict[str, Any]) -> None:
    """Create the empty datasets and the attributes of a new, unfinished file.

    Args:
        f: the new file, open for writing.
        params: the data-defining parameters (:data:`PARAMETER_KEYS`); their
            ``n``, ``lattice``, ``ratios`` and ``phases`` fix the shapes.
    """
    n, size = params["n"], params["lattice"]
    f.create_dataset(
        "hr",
        shape=(n, size, size, CHANNELS),
        dtype=np.float32,
        chunks=(1, size, size, CHANNELS),
        fillvalue=np.nan,
        **COMPRESSION,
    )
    for r in params["ratios"]:
        h = size // r
        f.create_dataset(
            f"lr/x{r}",
            shape=(n, h, h, CHANNELS),
            dtype=np.float32,
            chunks=(1, h, h, CHANNELS),
            fillvalue=np.nan,
            **COMPRESSION,
        )
        if params["phases"]:
            p = params["phases"]
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


def check_layout(f: h5py.File, params: dict[str, Any]) -> None:
    """Raise if an unfinished file lacks a dataset this run would write.

    Args:
        f: the unfinished file.
        params: the data-defining parameters of this run, as for :func:`create_layout`.

    Raises:
        MagsrError: naming the first missing or misshapen dataset.
    """
    size, n, phases = params["lattice"], params["n"], params["phases"]
    expected = {"hr": (n, size, size, CHANNELS)}
    for r in params["ratios"]:
        expected[f"lr/x{r}"] = (n, size // r, size // r, CHANNELS)
        if phases:
            expected[f"lr_phases/x{r}"] = (n, phases, size // r, size // r, CHANNELS)
            expected[f"lr_phases/x{r}_offsets"] = (n, phases, 2)
    for name, shape in expected.items():
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset) or ds.shape != shape:
            raise MagsrError(
                f"{f.filename} cannot be resumed: dataset {name!r} is missing or has the wrong "
                "shape; delete it to start over"
            )


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
        raise MagsrError(f"{path} is not a readable HDF5 dataset ({error_line(exc)})") from None


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


def read_rows(path: Path | str, key: str, start: int, stop: int) -> np.ndarray:
    """Rows ``[start, stop)`` of dataset ``key`` (``"hr"``, ``"lr/x8"``) as float32, one call."""
    with h5py.File(path, "r") as f:
        return np.asarray(f[key][start:stop], dtype=np.float32)


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
