"""Apply an exported model to LR maps: a local SavedModel, batched and tiled.

:class:`LocalPredictor` runs the ``serving_default`` signature of a SavedModel
(the remote predictors of :mod:`magsr_tf.serving.clients` have the same call
interface); :func:`run_predictor` feeds it batches, cutting large maps into
overlapping tiles whose stitched result equals one pass over the whole map
(:func:`magsr_tf.inference.tiling.tiled_apply`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.tiling import TILE, TILE_MARGIN, tiled_apply


class LocalPredictor:
    """Runs the ``serving_default`` signature of a local SavedModel.

    Args:
        model_dir: a model folder (newest version) or a SavedModel folder.
        version: a specific version.
    """

    def __init__(self, model_dir: Path, version: int | None = None):
        import tensorflow as tf

        from magsr_tf.inference.export import SIGNATURE_KEY, latest_saved_model, read_metadata

        self.path = latest_saved_model(Path(model_dir), version)
        try:
            loaded = tf.saved_model.load(str(self.path))
        except Exception as exc:  # corrupt protobuf, missing variables, ...
            raise MagsrError(f"cannot load the SavedModel {self.path}: {exc}") from exc
        if SIGNATURE_KEY not in loaded.signatures:
            raise MagsrError(f"{self.path} has no '{SIGNATURE_KEY}' signature")
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[SIGNATURE_KEY]
        _, inputs = self._fn.structured_input_signature
        ((self.input_name, spec),) = inputs.items()
        self.channels = int(spec.shape[-1]) if spec.shape[-1] is not None else None
        (self.output_name,) = self._fn.structured_outputs
        meta = read_metadata(self.path)
        self.padding = meta.get("padding")
        self.ratio = meta.get("ratio")
        self.max_values = None

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        """SR of ``[n, h, w, C]`` LR maps (``[h, w, C]`` gives ``[H, W, C]``).

        Raises:
            MagsrError: a shape, component count or value the model cannot take
                (checked here: TensorFlow aborts the process on some of them).
                Vector lengths are not checked (see the comment below).
        """
        import tensorflow as tf

        array = np.asarray(lr)
        if array.ndim == 3:
            return self(array[None])[0]
        # Shape and finiteness only: a picture's three normalized components may
        # exceed |m| = 1, and the commands check lengths where they apply.
        if array.ndim != 4 or array.shape[0] < 1 or min(array.shape[1:3]) < 1:
            raise MagsrError(
                f"expected LR maps [n, h, w, C] or [h, w, C]. Received: shape={array.shape}"
            )
        if self.channels is not None and array.shape[-1] != self.channels:
            raise MagsrError(
                f"the model {self.path} takes {self.channels} component(s). "
                f"Received: shape={array.shape}"
            )
        if array.dtype.kind not in "fiu" or not np.isfinite(array).all():
            raise MagsrError(f"LR input {array.shape} is not numeric or contains NaN or inf")
        batch = array
        lr = batch
        try:
            out = self._fn(**{self.input_name: tf.constant(lr, dtype=tf.float32)})
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MagsrError(f"the model {self.path} failed on input {lr.shape}: {first}") from exc
        return out[self.output_name].numpy()


def run_predictor(
    predictor: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    ratio: int,
    padding: str,
    batch_size: int = 8,
    max_values: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    out=None,
) -> np.ndarray:
    """SR of ``[n, h, w, C]`` maps in batches, tiling large maps (exact; see tiled_apply).

    ``out``: an ``[n, H, W, C]`` array or :class:`~magsr_tf.inference.tiling.NpyBands`
    to stream the SR into (default: a new array); it is returned.
    """
    n, h, w, c = lr.shape
    tile = TILE
    if max_values is not None:
        # Keep each request's output within the budget: (tile + 2 margin)^2 r^2 C values.
        edge = int(np.sqrt(max_values / (ratio * ratio * c)))
        tile = max(8, edge - 2 * TILE_MARGIN)
        per_map = (min(h, tile + 2 * TILE_MARGIN) * min(w, tile + 2 * TILE_MARGIN)) * ratio**2 * c
        batch_size = max(1, min(batch_size, max_values // max(1, per_map)))
    if out is None:
        out = np.empty((n, h * ratio, w * ratio, c), dtype=np.float32)
    for start in range(0, n, batch_size):
        part = lr[start : start + batch_size]
        tiled_apply(predictor, part, ratio, tile=tile, padding=padding, out=out, first=start)
        if progress is not None:
            progress(min(n, start + batch_size), n)
    return out


def probe_ratio(predictor, lr: np.ndarray) -> int:
    """The up-sampling ratio, measured on a small corner of the input."""
    probe = lr[:1, : min(8, lr.shape[1]), : min(8, lr.shape[2])]
    out = np.asarray(predictor(probe))
    ratio = out.shape[1] // probe.shape[1]
    if out.ndim != 4 or ratio < 1 or out.shape[1] != probe.shape[1] * ratio:
        raise MagsrError(f"the model answered shape {out.shape} for input {probe.shape}")
    return ratio
