"""Open boundaries: an LR window of a larger texture, extended before a periodic operator sees it.

A microscope image is a window of a larger film: nothing wraps around its edge.
The shipped networks pad periodically inside (the simulated lattices are
periodic), so on a window they mix the opposite edge into the border. Every
open-boundary path of the package therefore extends the LR window by
:data:`OPEN_MARGIN` pixels of a continuation of its texture, runs the periodic
operator on the extended map and keeps the window. The margin exceeds the
networks' receptive field (< 6 LR pixels,
:data:`magsr_tf.inference.tiling.TILE_MARGIN`), so the wrap-around never reaches
the window. The continuation matters within two LR pixels of the edge: a
mirror image folds walls and reverses spirals there; a straight (point-reflected)
continuation suits domain walls, linear prediction suits spirals.
Measurements behind the choice: docs/windows.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError

BOUNDARIES = ("periodic", "open")
OPEN_MARGIN = 8
"""LR pixels of mirrored context around an open window (> the networks' receptive field)."""
MIN_WINDOW = 4
"""The smallest LR window (pixels per side) an open boundary accepts."""
PERIODIC_SUFFIXES = (".npy", ".h5", ".hdf5")
"""Inputs that default to a periodic boundary: simulation maps. Pictures and microscope
files (TIFF, PNG, Gwyddion, ...) default to open."""


def check_boundary(boundary: str | None, allow_none: bool = True) -> str | None:
    """Validates a boundary name ("periodic" or "open"; None for a per-input default)."""
    if boundary is None and allow_none:
        return None
    if boundary not in BOUNDARIES:
        raise MagsrError(f"boundary must be 'periodic' or 'open'. Received: boundary={boundary!r}")
    return boundary


def default_boundary(source: str | Path) -> str:
    """The boundary of an input by its file: periodic for ``.npy``/``.h5``, open otherwise."""
    path = str(source).split(", ")[0]
    # FILE.h5:DATASET[sel] specs name the file before the colon.
    head = path.split(":", 1)[0] if ".h5:" in path or ".hdf5:" in path else path
    return "periodic" if Path(head).suffix.lower() in PERIODIC_SUFFIXES else "open"


def check_window(shape, source: str = "LR input") -> None:
    """Refuses an open-boundary window smaller than :data:`MIN_WINDOW` LR pixels."""
    h, w = int(shape[-3]), int(shape[-2])
    if min(h, w) < MIN_WINDOW:
        raise MagsrError(
            f"{source}: an open-boundary window needs at least {MIN_WINDOW}x{MIN_WINDOW} LR "
            f"pixels. Received: {h}x{w}"
        )


EXTENSIONS = ("auto", "odd", "ar", "symmetric")
AR_ORDER = 4
"""Taps of the linear-prediction extension (a spiral is AR(2) along any line; 4 absorbs
the blur and the unit-length nonlinearity)."""
IN_PLANE_SPIRAL = 0.25
"""Mean squared in-plane LR component from which ``"auto"`` continues a map as a spiral."""


def _odd(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Point reflection about the edge pixel, x(-d) = 2 x(0) - x(d): linear continuation."""
    out = x
    left = m
    while left > 0:
        step = min(left, out.shape[axis] - 1)
        pad = [(0, 0)] * out.ndim
        pad[axis] = (step, step)
        out = np.pad(out, pad, mode="reflect", reflect_type="odd")
        left -= step
    return out


def _ar(x: np.ndarray, m: int, axis: int, order: int = AR_ORDER) -> np.ndarray:
    """Linear prediction along ``axis``: one AR(order) fit per map, forward and backward."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 1)
    n, h = x.shape[:2]
    p = max(1, min(order, h - 2))
    out = np.zeros((n, h + 2 * m) + x.shape[2:])
    out[:, m : m + h] = x
    for i in range(n):
        seq = x[i].reshape(h, -1)
        both = np.concatenate([seq, seq[::-1]], axis=1)  # the same taps predict both ways
        design = np.stack([both[p - j : h - j] for j in range(1, p + 1)], -1).reshape(-1, p)
        taps, *_ = np.linalg.lstsq(design, both[p:].reshape(-1), rcond=None)
        cur = out[i].reshape(h + 2 * m, -1)
        for k in range(m + h, h + 2 * m):
            cur[k] = taps @ cur[k - p : k][::-1]
        for k in range(m - 1, -1, -1):
            cur[k] = taps @ cur[k + 1 : k + p + 1]
    return np.moveaxis(out, 1, axis)


def _symmetric(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    out = x
    left = m
    while left > 0:
        step = min(left, out.shape[axis])
        pad = [(0, 0)] * out.ndim
        pad[axis] = (step, step)
        out = np.pad(out, pad, mode="symmetric")
        left -= step
    return out


_METHODS = {"odd": _odd, "ar": _ar, "symmetric": _symmetric}


def _extend_with(lr: np.ndarray, margin: int, method: str) -> np.ndarray:
    fn = _METHODS[method]
    out = fn(fn(lr, margin, 1), margin, 2)
    # No LR vector is longer than 1 (each is an average of unit spins).
    length = np.linalg.norm(out, axis=-1, keepdims=True) if out.shape[-1] == 3 else np.abs(out)
    return (out / np.maximum(length, 1.0)).astype(np.float32)


def choose_extension(lr: np.ndarray) -> np.ndarray:
    """Per map ``[n]``: ``"ar"`` for textures that rotate in plane (spirals), else ``"odd"``.

    A mean squared in-plane component of at least :data:`IN_PLANE_SPIRAL` marks a
    spiral or skyrmion lattice (a cycloid averages 1/2); out-of-plane domains
    with narrow walls stay far below it, and one-component (m_z) maps have none.
    """
    lr = np.asarray(lr)
    if lr.shape[-1] != 3:
        return np.full(len(lr), "odd")
    in_plane = np.mean(lr[..., 0] ** 2 + lr[..., 1] ** 2, axis=(1, 2))
    return np.where(in_plane >= IN_PLANE_SPIRAL, "ar", "odd")


def extend(lr: np.ndarray, margin: int = OPEN_MARGIN, method: str = "auto") -> np.ndarray:
    """``[n, h, w, C]`` maps extended by ``margin`` pixels on each side, row then column.

    Methods: ``"odd"`` (point reflection: straight continuation of walls and
    gradients), ``"ar"`` (linear prediction, :data:`AR_ORDER` taps fitted to
    the map: continues a spiral's oscillation), ``"symmetric"`` (mirror), and
    ``"auto"`` (per map, :func:`choose_extension`). Measured in docs/windows.md:
    choosing by how well each method predicts the window's own outer pixels
    from the rest picked the worse one on Type II.
    """
    lr = np.asarray(lr, dtype=np.float32)
    if margin < 0:
        raise MagsrError(f"margin must be >= 0. Received: margin={margin}")
    if method not in EXTENSIONS:
        raise MagsrError(f"extension must be one of {EXTENSIONS}. Received: {method!r}")
    if margin == 0:
        return lr
    if method != "auto":
        return _extend_with(lr, margin, method)
    chosen_method = choose_extension(lr)
    out = np.empty(
        (lr.shape[0], lr.shape[1] + 2 * margin, lr.shape[2] + 2 * margin, lr.shape[3]), np.float32
    )
    for name in _METHODS:
        chosen = chosen_method == name
        if chosen.any():
            out[chosen] = _extend_with(lr[chosen], margin, name)
    return out


def crop(sr: np.ndarray, margin: int, ratio: int) -> np.ndarray:
    """The window of an SR map computed on an :func:`extend`-ed LR map."""
    m = margin * ratio
    if m == 0:
        return sr
    return sr[:, m:-m, m:-m]


class OpenBoundary:
    """An SR function ``[n, h, w, C] -> [n, h r, w r, C]`` applied with an open boundary.

    Wraps a predictor (a local SavedModel, a TF Serving client, a Keras model's
    call): each call extends its LR input (:func:`extend`), runs the wrapped
    function and crops the window (:func:`crop`). Attributes mirror the wrapped
    predictor (``channels``, ``max_values``), so it drops into
    :func:`magsr_tf.inference.predictor.run_predictor` with ``padding="reflect"``
    (tiles end at the map's border, where this wrapper extends them).
    """

    def __init__(self, fn, ratio: int, margin: int = OPEN_MARGIN, method: str = "auto"):
        if method not in EXTENSIONS:
            raise MagsrError(f"extension must be one of {EXTENSIONS}. Received: {method!r}")
        self.fn, self.ratio, self.margin, self.method = fn, int(ratio), int(margin), method
        self.channels = getattr(fn, "channels", None)
        values = getattr(fn, "max_values", None)
        self.max_values = values

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = np.asarray(lr, dtype=np.float32)
        if lr.ndim == 3:
            return self(lr[None])[0]
        check_window(lr.shape)
        wide = extend(lr, self.margin, self.method)
        return crop(np.asarray(self.fn(wide), dtype=np.float32), self.margin, self.ratio)
