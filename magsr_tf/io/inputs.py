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

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.pictures import HIGH_PERCENTILE, LOW_PERCENTILE, images_to_spins, is_image_path

H5_SUFFIXES = (".h5", ".hdf5")
VECTOR_LENGTH_TOLERANCE = 1e-3
"""How far beyond 1 an LR vector may reach. LR pixels are averages of unit spins with
non-negative weights that sum to 1, so |m| <= 1 up to rounding: ~1e-7 in float32 (stored
HR spins deviate from 1 by at most 1.2e-7), ~5e-4 for maps stored as float16 (half an ulp
at 1). 1e-3 admits both and still rejects maps that were not made of unit spins (raw
fields, unnormalized magnetization)."""
_H5_SPEC = re.compile(
    r"^(?P<file>.+?\.(?:h5|hdf5))(?::(?P<dataset>[^\[\]]+))?(?:\[(?P<sel>[^\]]*)\])?$"
)


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


def read_npy(path: Path) -> tuple[np.ndarray, bool]:
    """Reads a ``.npy`` map or batch as ``[n, h, w, C]`` float32 (and whether it was one map)."""
    path = Path(path)
    if not path.is_file():
        raise MagsrError(f"no file {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise MagsrError(f"cannot read {path} as .npy: {exc}") from exc
    return as_lr_batch(array, str(path))


def load_inputs(
    inputs: Sequence[str],
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
) -> list[InputBatch]:
    """Reads the inputs of `magsr-tf predict` (see the module docstring).

    Pictures form one input together (1 or 3 of them); ``.npy`` and HDF5 inputs
    are one input each. Mixing pictures with arrays is refused.

    Raises:
        MagsrError: unknown type, unreadable file, bad shape or image count.
    """
    if not inputs:
        raise MagsrError("no input given")
    images = [p for p in inputs if is_image_path(p)]
    if images:
        if len(images) != len(inputs):
            raise MagsrError("give either pictures (1 or 3) or .npy/.h5 inputs, not both")
        spins = images_to_spins(images, low, high, value_range)
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
            lr, single = read_npy(Path(spec))
            batches.append(InputBatch(Path(spec).stem, lr, single, spec))
        else:
            raise MagsrError(
                f"unknown input type {spec!r}: use .npy, FILE.h5:DATASET or pictures "
                "(.png, .tif, ...)"
            )
    return batches
