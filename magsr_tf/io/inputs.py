"""LR inputs of a command: ``.npy`` arrays, HDF5 datasets and pictures, checked.

- ``.npy``: ``[h, w]`` (one component), ``[h, w, C]`` or ``[n, h, w, C]``;
- ``FILE.h5:DATASET`` with an optional slice, e.g. ``data/typeI.h5:lr/x8`` or
  ``data/typeI.h5:lr/x8[0:10]`` (a bare ``FILE.h5`` works when it holds exactly
  one ``lr/x*`` dataset);
- pictures (``.png``, ``.tif``, ...): one image = m_z, three images = m_x, m_y, m_z,
  mapped onto [-1, 1] as ``fit-image`` does (:mod:`magsr_tf.io.pictures`).

Every map comes out as ``[n, h, w, C]`` float32 with 1 or 3 components, finite,
with no vector longer than 1 (:func:`check_lr_values`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.pictures import (
    HIGH_PERCENTILE,
    LOW_PERCENTILE,
    PICTURE_BYTES_PER_PIXEL,
    images_to_spins,
    is_image_path,
)

H5_SUFFIXES = (".h5", ".hdf5")
VECTOR_LENGTH_TOLERANCE = 1e-3
"""How far beyond 1 an LR vector may reach. LR pixels are averages of unit spins with
non-negative weights that sum to 1, so |m| <= 1 up to rounding: ~1e-7 in float32 (stored
HR spins deviate from 1 by at most 1.2e-7), ~5e-4 for maps stored as float16 (half an ulp
at 1). 1e-3 admits both and still rejects maps that were not made of unit spins (raw
fields, unnormalized magnetization)."""
MEMORY_ENV = "MAGSR_MAX_MEMORY"
"""Environment variable of the memory limit (``--max-memory`` overrides it): e.g. ``4G``."""
MEMORY_FRACTION = 0.8
"""Share of MemAvailable (``/proc/meminfo``) used as the default limit: the rest is
left to the page cache and other processes."""
DEFAULT_LIMIT_BYTES = 4 * 2**30
"""The limit where ``/proc/meminfo`` cannot be read."""
_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_H5_SPEC = re.compile(
    r"^(?P<file>.+?\.(?:h5|hdf5))(?::(?P<dataset>[^\[\]]+))?(?:\[(?P<sel>[^\]]*)\])?$"
)


def parse_memory(text: str | int | float) -> int:
    """Bytes of a memory size: ``4G``, ``1500M``, ``2.5GB`` or plain bytes (units of 1024).

    Raises:
        MagsrError: not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
    if match is None or float(match[1]) <= 0:
        raise MagsrError(f"memory size must be like 4G, 1500M or bytes. Received: {text!r}")
    return int(float(match[1]) * _UNITS[match[2]])


def memory_limit(max_memory: str | int | None = None) -> int:
    """Bytes a command may use: ``max_memory``, else ``$MAGSR_MAX_MEMORY``, else
    :data:`MEMORY_FRACTION` of MemAvailable."""
    if max_memory is None:
        max_memory = os.environ.get(MEMORY_ENV) or None
    if max_memory is not None:
        return parse_memory(max_memory)
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * MEMORY_FRACTION)
    except (OSError, ValueError):
        pass
    return DEFAULT_LIMIT_BYTES


def format_bytes(size: float) -> str:
    """``1.25 GB`` (or MB below 0.1 GB), in units of 1024."""
    return f"{size / 2**30:.2f} GB" if size >= 0.1 * 2**30 else f"{size / 2**20:.1f} MB"


def check_memory(need: float, what: str, limit: int, hint: str = "") -> None:
    """Refuses work whose estimated peak ``need`` (bytes) exceeds ``limit``.

    Raises:
        MagsrError: one line with the estimate, the limit and ``hint``.
    """
    if need > limit:
        raise MagsrError(
            f"{what} needs about {format_bytes(need)} of memory; the limit is "
            f"{format_bytes(limit)} (--max-memory or {MEMORY_ENV}, default "
            f"{MEMORY_FRACTION:.0%} of MemAvailable){hint}"
        )


def lr_bytes(shape: Sequence[int], itemsize: int = 4) -> int:
    """Peak bytes of reading and checking LR maps of ``shape`` (see :func:`as_lr_batch`):
    the raw array, its float32 copy and the float64 squares and lengths of the check."""
    values = int(np.prod(shape, dtype=np.int64))
    channels = int(shape[-1]) if len(shape) >= 3 else 1
    return values * (itemsize + 4 + 8) + (values // max(1, channels)) * 8


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header, without reading the data.

    Raises:
        MagsrError: not a ``.npy`` file (empty, truncated, another format).
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "empty or truncated"
        raise MagsrError(f"cannot read {path} as .npy: {reason}") from exc
    return tuple(int(s) for s in shape), np.dtype(dtype)


@dataclass
class InputBatch:
    """LR maps read from one input.

    Attributes:
        name: stem for the output files.
        lr: ``[n, h, w, C]`` float32.
        single: the input was one map (the output is saved as ``[H, W, C]``).
        source: what was read.
    """

    name: str
    lr: np.ndarray
    single: bool
    source: str


def _parse_selection(sel: str | None, n: int, spec: str):
    if sel is None or sel.strip() == "":
        return slice(None)
    try:
        if ":" in sel:
            start, stop = (int(p) if p.strip() else None for p in sel.split(":", 1))
            return slice(start, stop)
        index = int(sel)
    except ValueError as exc:
        raise MagsrError(f"bad selection [{sel}] in {spec}; use [i] or [start:stop]") from exc
    if not -n <= index < n:
        raise MagsrError(f"index {index} out of range for {n} maps in {spec}")
    return slice(index, index + 1 if index != -1 else None)


def read_h5(spec: str) -> np.ndarray:
    """Reads ``FILE.h5[:DATASET][[sel]]`` as ``[n, h, w, C]`` float32."""
    import h5py

    match = _H5_SPEC.match(spec)
    if match is None:
        raise MagsrError(f"bad HDF5 input {spec!r}; use FILE.h5:DATASET or FILE.h5:DATASET[a:b]")
    path = Path(match["file"])
    if not path.is_file():
        raise MagsrError(f"no HDF5 file {path}")
    try:
        with h5py.File(path, "r") as f:
            name = match["dataset"]
            if name is None:
                group = f.get("lr")
                found = sorted(group.keys()) if isinstance(group, h5py.Group) else []
                if len(found) != 1:
                    raise MagsrError(
                        f"name the dataset in {path}, e.g. {path}:lr/x8. Received: {spec!r}"
                    )
                name = f"lr/{found[0]}"
            data = f.get(name)
            if not isinstance(data, h5py.Dataset):
                raise MagsrError(f"no dataset {name!r} in {path}")
            selection = _parse_selection(match["sel"], data.shape[0] if data.ndim else 0, spec)
            array = data[selection] if data.ndim == 4 else data[()]
    except OSError as exc:
        raise MagsrError(f"cannot read {path} as HDF5: {exc}") from exc
    return as_lr_batch(np.asarray(array), spec)[0]


def as_lr_batch(array: np.ndarray, source: str) -> tuple[np.ndarray, bool]:
    """An LR array as ``[n, h, w, C]`` float32, checked, and whether it was one map.

    Takes ``[h, w]`` (one component), ``[h, w, C]`` or ``[n, h, w, C]`` with C = 1 or 3.

    Raises:
        MagsrError: not numeric, another rank, another component count, fewer
            than 2x2 pixels, NaN/inf or vectors longer than 1 (:func:`check_lr_values`).
    """
    if array.dtype.kind not in "fiu":
        raise MagsrError(f"{source} is not numeric. Received: dtype={array.dtype}")
    if array.ndim == 2:
        array, single = array[None, :, :, None], True
    elif array.ndim == 3:
        array, single = array[None], True
    elif array.ndim == 4:
        single = False
    else:
        raise MagsrError(
            f"{source}: expected [h, w], [h, w, C] or [n, h, w, C]. Received: shape={array.shape}"
        )
    if array.shape[-1] not in (1, 3) or min(array.shape[1:3]) < 2 or array.shape[0] < 1:
        raise MagsrError(
            f"{source}: expected 1 or 3 components and at least 2x2 pixels. "
            f"Received: shape={array.shape}"
        )
    return check_lr_values(array.astype(np.float32), source), single


def check_lr_values(array: np.ndarray, source: str) -> np.ndarray:
    """Checks LR maps ``[n, h, w, C]`` are finite with no vector longer than 1; returns them.

    Raises:
        MagsrError: NaN or inf, or a vector longer than 1 + :data:`VECTOR_LENGTH_TOLERANCE`.
    """
    if not np.isfinite(array).all():
        raise MagsrError(f"{source} contains NaN or inf")
    length = np.sqrt(np.sum(np.square(array, dtype=np.float64), axis=-1))
    if length.max() > 1 + VECTOR_LENGTH_TOLERANCE:
        n, y, x = np.unravel_index(int(np.argmax(length)), length.shape)
        raise MagsrError(
            f"{source}: an LR image of unit spins has vectors no longer than 1, found "
            f"|m| = {length.max():.4g} (map {n}, pixel y={y}, x={x})"
        )
    return array


def read_npy(path: Path, limit: int | None = None) -> tuple[np.ndarray, bool]:
    """Reads a ``.npy`` map or batch as ``[n, h, w, C]`` float32 (and whether it was one map).

    Args:
        path: the file.
        limit: memory limit in bytes (default :func:`memory_limit`).

    Raises:
        MagsrError: unreadable, a shape that does not fit in ``limit``, or bad values.
    """
    limit = memory_limit() if limit is None else limit
    path = Path(path)
    if not path.is_file():
        raise MagsrError(f"no file {path}")
    # The header first: a shape that cannot fit is refused before NumPy allocates it.
    shape, dtype = npy_header(path)
    if dtype.kind in "fiu":
        check_memory(lr_bytes(shape, dtype.itemsize), f"reading {path} {list(shape)}", limit)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MagsrError(f"cannot read {path} as .npy: {exc}") from exc
    return as_lr_batch(array, str(path))


def load_inputs(
    inputs: Sequence[str],
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
    limit: int | None = None,
) -> list[InputBatch]:
    """Reads the inputs of `magsr-tf predict` (see the module docstring).

    ``limit`` (bytes, default :func:`memory_limit`) bounds each input, checked from
    ``.npy`` headers and picture headers before the data is read.

    Pictures form one input together (1 or 3 of them); ``.npy`` and HDF5 inputs
    are one input each. Mixing pictures with arrays is refused.

    Raises:
        MagsrError: unknown type, unreadable file, bad shape or image count.
    """
    if not inputs:
        raise MagsrError("no input given")
    limit = memory_limit() if limit is None else limit
    images = [p for p in inputs if is_image_path(p)]
    if images:
        if len(images) != len(inputs):
            raise MagsrError("give either pictures (1 or 3) or .npy/.h5 inputs, not both")
        max_pixels = limit // (PICTURE_BYTES_PER_PIXEL * len(images))
        spins = images_to_spins(images, low, high, value_range, max_pixels=max_pixels)
        return [InputBatch(Path(images[0]).stem, spins[None], True, ", ".join(images))]
    batches = []
    for spec in inputs:
        base = spec.split(":", 1)[0] if ".h5:" in spec or ".hdf5:" in spec else spec
        suffix = Path(re.sub(r"\[.*\]$", "", base)).suffix.lower()
        if suffix in H5_SUFFIXES:
            lr = read_h5(spec)
            match = _H5_SPEC.match(spec)
            dataset = (match["dataset"] or "lr") if match else "lr"
            name = f"{Path(match['file']).stem}_{dataset.strip('/').replace('/', '_')}"
            batches.append(InputBatch(name, lr, False, spec))
        elif suffix == ".npy":
            lr, single = read_npy(Path(spec), limit)
            batches.append(InputBatch(Path(spec).stem, lr, single, spec))
        else:
            raise MagsrError(
                f"unknown input type {spec!r}: use .npy, FILE.h5:DATASET or pictures "
                "(.png, .tif, ...)"
            )
    return batches


def input_shapes(inputs: Sequence[str]) -> list[tuple[int, int, int, int] | None]:
    """The ``[n, h, w, C]`` shape of each input :func:`load_inputs` would return, from
    headers only (``.npy`` header, picture size); None where unknown (HDF5, bad files:
    :func:`load_inputs` reports those)."""
    from PIL import Image

    images = [p for p in inputs if is_image_path(p)]
    if images:
        try:
            with Image.open(images[0]) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - any unreadable picture is load_inputs' error
            return [None]
        return [(1, height, width, 3 if len(images) == 3 else 1)]
    shapes = []
    for spec in inputs:
        shape = None
        if spec.lower().endswith(".npy") and Path(spec).is_file():
            try:
                raw, _ = npy_header(Path(spec))
            except MagsrError:
                raw = ()
            if len(raw) == 2:
                shape = (1, raw[0], raw[1], 1)
            elif len(raw) == 3:
                shape = (1, *raw)
            elif len(raw) == 4:
                shape = tuple(raw)
        shapes.append(shape)
    return shapes
