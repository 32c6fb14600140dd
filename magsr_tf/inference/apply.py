"""Apply a trained SR model to LR arrays in memory: the notebook path.

:func:`super_resolve` takes a NumPy array of any usual shape and a model given
by name, folder, ``.keras`` file or as a loaded Keras model; it checks the
input as ``magsr-tf predict`` does (a :class:`~magsr_tf.errors.MagsrError`,
never a TensorFlow crash) and tiles large maps so memory stays bounded.
:func:`apply_model` is the plain batched pass that evaluation uses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.tiling import NpyBands, sr_memory, tiled_apply
from magsr_tf.io.inputs import as_lr_batch, check_memory, memory_limit
from magsr_tf.io.writers import atomic_path
from magsr_tf.ops.spins import unit_normalize
from magsr_tf.ops.windows import OpenBoundary, check_boundary, check_window

DEFAULT_MODELS_ROOT = Path("saved_models")
Progress = Callable[[int, int], None]


def model_padding(sr_model) -> str:
    """The padding mode of a saved SR model ("periodic" or "reflect")."""
    from magsr_tf.nn.layers import PeriodicPad2D

    for layer in sr_model.layers:
        if isinstance(layer, PeriodicPad2D):
            return layer.mode
    return "periodic"


def model_channels(sr_model) -> int:
    """Spin components the SR model takes (1 for m_z, 3 for vectors)."""
    return int(sr_model.inputs[0].shape[-1])


def apply_model(
    sr_model, lr: np.ndarray, batch_size: int = 32, progress: Progress | None = None
) -> np.ndarray:
    """Runs the SR model over ``[n, h, w, C]`` LR maps in batches; returns unit-spin float32."""
    out = []
    n = len(lr)
    for start in range(0, n, batch_size):
        batch = lr[start : start + batch_size]
        out.append(np.asarray(sr_model(batch, training=False)))
        if progress:
            progress(min(start + batch_size, n), n)
    # The SR model ends with UnitSpin; normalizing again only guards older models.
    return unit_normalize(np.concatenate(out)) if out else np.zeros((0,), np.float32)


def load_model(model, models_root: str | Path = DEFAULT_MODELS_ROOT):
    """A Keras SR model from a name under ``models_root``, a folder or a ``.keras`` file.

    A loaded Keras model is returned as it is.

    Raises:
        MagsrError: no such model, or an unreadable one.
    """
    if not isinstance(model, (str, Path)):
        if not hasattr(model, "layers") or not callable(model):
            raise MagsrError(
                f"model must be a name, a folder, a .keras file or a Keras model. "
                f"Received: {type(model).__name__}"
            )
        return model
    from magsr_tf.inference.export import resolve_model_dir
    from magsr_tf.nn.model import load_sr_model

    path = Path(model)
    if path.suffix == ".keras" and path.is_file():
        return load_sr_model(path)
    return load_sr_model(resolve_model_dir(model, Path(models_root)))


def super_resolve(
    lr,
    model,
    batch_size: int = 8,
    padding: str | None = None,
    models_root: str | Path = DEFAULT_MODELS_ROOT,
    out: str | Path | None = None,
    max_memory: str | int | None = None,
    boundary: str = "periodic",
) -> np.ndarray:
    """SR of LR spin maps with a trained network.

    Memory is bounded: the estimated peak (model call, LR maps and, unless
    ``out`` is given, the whole SR) must fit the limit (``max_memory``, else
    ``$MAGSR_MAX_MEMORY``, else 80 % of MemAvailable) or the call is refused
    before any tile is computed. With ``out`` the SR streams tile by tile into
    that ``.npy`` file (written under a temporary name, renamed when complete)
    and a read-only memory map of it is returned, so SRs larger than memory work.

    Args:
        lr: ``[h, w, C]`` or ``[n, h, w, C]`` (or ``[h, w]`` for one component)
            LR maps with vectors no longer than 1.
        model: a model name under ``models_root`` (``"typeI_x8"``), a model
            folder, a ``.keras`` file, or a loaded Keras model.
        batch_size: maps per network call.
        padding: border handling of tiles for large maps, ``"periodic"`` or
            ``"reflect"``; default the model's own.
        models_root: where model names are looked up.
        out: stream the SR into this ``.npy`` file (``[H, W, C]`` or ``[n, H, W, C]``;
            a ``[h, w]`` input gives ``[H, W, 1]`` there) and return its memory map.
        max_memory: memory limit (``"4G"``, ``"1500M"`` or bytes).
        boundary: ``"periodic"`` (a whole simulated lattice) or ``"open"`` (a
            window of a larger texture, e.g. a microscope image: extended by a
            continuation of its texture before the network, :mod:`magsr_tf.ops.windows`).

    Returns:
        float32 SR maps of the input's rank: ``[H, W, C]``, ``[n, H, W, C]`` or ``[H, W]``
        (a read-only ``np.memmap`` of ``out`` if given).

    Raises:
        MagsrError: bad shape, NaN/inf, vectors longer than 1, a component
            count the model does not take, a model that cannot be loaded, or an
            SR that does not fit the memory limit (the message gives the estimate).
    """
    if padding not in (None, "periodic", "reflect"):
        raise MagsrError(f"padding must be 'periodic' or 'reflect'. Received: {padding!r}")
    if batch_size < 1:
        raise MagsrError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    check_boundary(boundary, allow_none=False)
    limit = memory_limit(max_memory)
    array = np.asarray(lr)
    batch, single = as_lr_batch(array, f"LR array {array.shape}")
    if boundary == "open":
        check_window(batch.shape, f"LR array {array.shape}")
    sr_model = load_model(model, models_root)
    from magsr_tf.nn.model import model_ratio

    channels = model_channels(sr_model)
    if batch.shape[-1] != channels:
        raise MagsrError(
            f"the model takes {channels} component(s) but the LR array has {batch.shape[-1]}. "
            f"Received: shape={array.shape}"
        )
    ratio = model_ratio(sr_model)
    mode = padding or model_padding(sr_model)

    n, h, w, c = batch.shape
    # A model passed in is already in memory; one loaded here counts.
    loaded_here = isinstance(model, (str, Path))
    need = sr_memory(batch.shape, ratio, batch_size, streamed=out is not None, model=loaded_here)
    hint = "" if out is not None else "; pass out='FILE.npy' to stream the SR to disk"
    check_memory(need, f"super-resolving [{n}x{h}x{w}x{c}] x{ratio}", limit, hint)

    def run(part: np.ndarray) -> np.ndarray:
        return apply_model(sr_model, part, batch_size)

    if boundary == "open" and model_padding(sr_model) != "reflect":
        run = OpenBoundary(run, ratio)
        mode = "reflect"  # tiles end at the border, where OpenBoundary extends them

    def fill(target) -> None:
        for i in range(0, n, batch_size):
            part = batch[i : i + batch_size]
            tiled_apply(run, part, ratio, padding=mode, out=target, first=i)

    shape = (n, h * ratio, w * ratio, c)
    if out is not None:
        with atomic_path(out) as tmp:
            fill(NpyBands(tmp, shape, single))
        sr = np.load(out, mmap_mode="r")
        sr = sr[None] if single else sr
    else:
        sr = np.empty(shape, np.float32)
        fill(sr)
    if array.ndim == 2:
        return sr[0, ..., 0]
    return sr[0] if single else sr
