"""Tiled inference: large maps through an SR function in overlapping tiles, exactly.

Memory of a whole-map pass grows with the map (about 0.1 GB of activations per
96x96 LR tile at x8); cutting tiles with enough context keeps it bounded with
the same result as one pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from magsr_tf.errors import MagsrError

TILE = 96
"""LR tile edge of :func:`tiled_apply`: about 0.1 GB of activations at x8."""
TILE_MARGIN = 8
"""LR context around a tile; the network's receptive field reaches < 6 LR pixels
(4 expander convs at LR scale plus < 2 LR pixels of the up-sampling convs)."""



def tiled_apply(
    fn: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    ratio: int,
    tile: int = TILE,
    margin: int = TILE_MARGIN,
    padding: str = "reflect",
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
    """
    lr = np.asarray(lr, dtype=np.float32)
    n, h, w, c = lr.shape
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        return np.asarray(fn(lr), dtype=np.float32)
    periodic = padding == "periodic"
    if periodic:
        source = np.pad(lr, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="wrap")
    else:
        source = lr
    r = ratio
    out = np.empty((n, h * r, w * r, c), dtype=np.float32)
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
            expected = (n, (ye - ys) * r, (xe - xs) * r, c)
            if piece.shape != expected:
                raise MagsrError(
                    f"the model returned shape {piece.shape} for a tile; expected {expected} "
                    f"(ratio {r})"
                )
            out[:, y0 * r : y1 * r, x0 * r : x1 * r] = piece[
                :, top * r : (top + y1 - y0) * r, left * r : (left + x1 - x0) * r
            ]
    return out
