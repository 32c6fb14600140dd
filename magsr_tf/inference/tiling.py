"""Tiled inference: large maps through an SR function in overlapping tiles, exactly.

Memory of a whole-map pass grows with the map (about 0.1 GB of activations per
96x96 LR tile at x8); cutting tiles with enough context keeps it bounded with
the same result as one pass. The stitched SR goes into any array, or into a
``.npy`` file mapped one tile at a time (:class:`NpyBands`), so that the SR
itself needs no memory either; :func:`sr_memory` estimates the peak.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.inputs import lr_bytes

TILE = 96
"""LR tile edge of :func:`tiled_apply`: about 0.1 GB of activations at x8."""
TILE_MARGIN = 8
"""LR context around a tile; the network's receptive field reaches < 6 LR pixels
(4 expander convs at LR scale plus < 2 LR pixels of the up-sampling convs)."""
MODEL_BYTES = 750 * 2**20
"""TensorFlow and a loaded SavedModel (measured: 0.65 GB peak RSS for typeI_x8 after
a first call), with headroom."""
CALL_BYTES_PER_OUTPUT_BYTE = 9
"""Peak bytes of one network call per byte of its output (measured 7.3 at x8 for
4 tiles of 112x112: the up-sampling activations dominate), output included."""


def sr_memory(
    shape: tuple[int, int, int, int],
    ratio: int,
    batch_size: int,
    streamed: bool = True,
    tile: int = TILE,
    margin: int = TILE_MARGIN,
    model: bool = True,
) -> int:
    """Estimated peak bytes of super-resolving ``[n, h, w, C]`` LR maps tile by tile.

    The sum of the model (:data:`MODEL_BYTES`), one network call on
    ``batch_size`` tiles with context (:data:`CALL_BYTES_PER_OUTPUT_BYTE`), the
    LR maps as read and checked, their padded copy, and the whole SR unless it is
    ``streamed`` into a mapped file (:class:`NpyBands`).
    """
    n, h, w, c = (int(v) for v in shape)
    edge_h = h if h <= tile + 2 * margin and w <= tile + 2 * margin else min(h, tile + 2 * margin)
    edge_w = w if edge_h == h and w <= tile + 2 * margin else min(w, tile + 2 * margin)
    call = min(n, batch_size) * edge_h * edge_w * ratio**2 * c * 4 * CALL_BYTES_PER_OUTPUT_BYTE
    lr = lr_bytes((n, h, w, c)) + n * (h + 2 * margin) * (w + 2 * margin) * c * 4
    sr = 0 if streamed else n * h * w * c * ratio**2 * 4
    return (MODEL_BYTES if model else 0) + call + lr + sr


class NpyBands:
    """A float32 ``.npy`` file of SR maps written tile by tile through short-lived maps.

    ``np.lib.format.open_memmap`` writes the header and sizes the file; each
    assignment then maps only the rows it writes, so the resident memory is one
    tile's rows, never the whole SR (a whole-file map keeps every written page
    resident until it is unmapped).

    Args:
        path: the file (a temporary name: the caller renames it when complete).
        shape: ``[n, H, W, C]`` of the SR.
        single: store ``[H, W, C]`` (n must be 1).
    """

    def __init__(self, path: str | Path, shape: tuple[int, int, int, int], single: bool = False):
        self.path = Path(path)
        self.shape = tuple(int(v) for v in shape)
        file_shape = self.shape[1:] if single else self.shape
        mapped = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=file_shape)
        self.offset = int(mapped.offset)
        del mapped  # unmapped: the file keeps its header and size

    def _band(self, index: int, rows: slice, mode: str) -> np.memmap:
        _, height, width, c = self.shape
        start, stop, _ = rows.indices(height)
        return np.memmap(
            self.path,
            dtype=np.float32,
            mode=mode,
            offset=self.offset + (index * height + start) * width * c * 4,
            shape=(max(0, stop - start), width, c),
        )

    def __setitem__(self, key: tuple[int, slice, slice], value: np.ndarray) -> None:
        """Writes ``value`` into map ``key[0]``, rows ``key[1]``, columns ``key[2]``."""
        index, rows, cols = key
        band = self._band(index, rows, "r+")
        band[:, cols] = value
        del band  # unmapped now: its pages leave this process's resident set

    def map(self, index: int = 0) -> MapRows:
        """Map ``index`` as a reader of row slices (for :func:`~magsr_tf.io.pictures.write_png`)."""
        return MapRows(self, index)


class MapRows:
    """One map of an :class:`NpyBands` file: ``rows[a:b]`` reads a copy of those rows."""

    def __init__(self, bands: NpyBands, index: int):
        self.bands, self.index = bands, index
        self.shape = bands.shape[1:]
        self.ndim = 3

    def __getitem__(self, rows: slice) -> np.ndarray:
        band = self.bands._band(self.index, rows, "r")
        copy = np.array(band)
        del band
        return copy


def tiled_apply(
    fn: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    ratio: int,
    tile: int = TILE,
    margin: int = TILE_MARGIN,
    padding: str = "reflect",
    out=None,
    first: int = 0,
) -> np.ndarray:
    """Applies an SR function to large maps tile by tile, with the result of one pass.

    Each LR tile is cut with ``margin`` pixels of context and only its centre
    is kept, so the output equals ``fn(lr)`` as long as ``margin`` covers the
    network's receptive field. At the image border: for ``"reflect"`` the tile
    ends at the border and the network's own reflect padding applies there as
    in the whole-image pass; for ``"periodic"`` the map is wrapped around.

    Args:
        fn: ``[n, h, w, C] -> [n, h r, w r, C]``.
        lr: ``[n, h, w, C]`` float32.
        ratio: r.
        tile: LR tile edge.
        margin: LR context pixels on each side.
        padding: the network's padding mode.
        out: where to write the SR, maps ``first ... first + n`` (an array or an
            :class:`NpyBands`, assigned as ``out[map, rows, cols]``); a new array
            if None.
        first: the index in ``out`` of ``lr``'s first map.

    Returns:
        ``out`` (or the new array).
    """
    lr = np.asarray(lr, dtype=np.float32)
    n, h, w, c = lr.shape
    r = ratio
    if out is None:
        out, first = np.empty((n, h * r, w * r, c), dtype=np.float32), 0
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        whole = np.asarray(fn(lr), dtype=np.float32)
        _check_piece(whole, (n, h * r, w * r, c), r)
        for j in range(n):
            out[first + j, :, :] = whole[j]
        return out
    periodic = padding == "periodic"
    if periodic:
        source = np.pad(lr, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="wrap")
    else:
        source = lr
    for y0 in range(0, h, tile):
        y1 = min(h, y0 + tile)
        for x0 in range(0, w, tile):
            x1 = min(w, x0 + tile)
            if periodic:  # padded coordinates: the tile starts at y0 + margin
                ys, ye, xs, xe = y0, y1 + 2 * margin, x0, x1 + 2 * margin
                top, left = margin, margin
            else:
                ys, ye = max(0, y0 - margin), min(h, y1 + margin)
                xs, xe = max(0, x0 - margin), min(w, x1 + margin)
                top, left = y0 - ys, x0 - xs
            piece = np.asarray(fn(source[:, ys:ye, xs:xe]), dtype=np.float32)
            _check_piece(piece, (n, (ye - ys) * r, (xe - xs) * r, c), r)
            rows, cols = slice(y0 * r, y1 * r), slice(x0 * r, x1 * r)
            for j in range(n):
                out[first + j, rows, cols] = piece[
                    j, top * r : (top + y1 - y0) * r, left * r : (left + x1 - x0) * r
                ]
    return out


def _check_piece(piece: np.ndarray, expected: tuple, ratio: int) -> None:
    if piece.shape != expected:
        raise MagsrError(
            f"the model returned shape {piece.shape} for a tile; expected {expected} "
            f"(ratio {ratio})"
        )
