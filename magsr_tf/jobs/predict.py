"""Super-resolve LR maps with an exported model: locally or through a TF Serving endpoint.

Inputs are read by :func:`magsr_tf.io.inputs.load_inputs` (``.npy``,
``FILE.h5:DATASET[sel]``, 1 or 3 pictures). The same request goes either to the
local SavedModel (:class:`magsr_tf.inference.predictor.LocalPredictor`) or to a
TF Serving REST or gRPC endpoint (:mod:`magsr_tf.serving.clients`; TF Serving
itself or ``magsr-tf serve``). Large maps are cut into overlapping tiles whose
stitched result equals one pass over the whole map.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.predictor import LocalPredictor, probe_ratio, run_predictor
from magsr_tf.io.inputs import load_inputs
from magsr_tf.io.pictures import is_image_path, write_png
from magsr_tf.io.writers import write_npy

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictConfig:
    """What `magsr-tf predict` does.

    Attributes:
        model: model folder / name under ``models_root`` (local), or the model name
            at ``server``.
        inputs: ``.npy`` files, ``FILE.h5:DATASET[sel]`` specs, or 1 / 3 pictures.
        out_dir: output folder (``NAME_sr.npy`` and ``NAME_sr.png`` per input).
        server: TF Serving REST base URL (``http://HOST:8501``) or gRPC address
            (``grpc://HOST:8500``); None runs the SavedModel locally.
        version: SavedModel version (default: the newest).
        batch_size: maps per call.
        padding: tiling at the border of large maps: "periodic" or "reflect";
            None: the model's own (local), else periodic for arrays and
            reflect for pictures.
        models_root: where model names are looked up.
        value_range: pixel values of m = -1 and +1 for pictures (default: percentiles).
        overwrite: replace existing outputs.
    """

    model: str
    inputs: tuple[str, ...]
    out_dir: Path = Path("predictions")
    server: str | None = None
    version: int | None = None
    batch_size: int = 8
    padding: str | None = None
    models_root: Path = Path("saved_models")
    value_range: tuple[float, float] | None = None
    overwrite: bool = False

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))
        if not self.inputs:
            raise MagsrError("give at least one input")
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if self.padding not in (None, "periodic", "reflect"):
            raise MagsrError(
                f"padding must be 'periodic' or 'reflect'. Received: padding={self.padding!r}"
            )
        if self.version is not None and self.version < 1:
            raise MagsrError(f"version must be >= 1. Received: version={self.version}")


@dataclass
class PredictOutput:
    """One input's result: the SR maps and the files written."""

    name: str
    sr: np.ndarray
    files: list[Path] = field(default_factory=list)


def make_predictor(config: PredictConfig):
    """The local or remote predictor for ``config``."""
    if config.server is not None and config.server.startswith("grpc://"):
        from magsr_tf.serving.clients import GrpcPredictor

        return GrpcPredictor(config.server, Path(config.model).name, config.version)
    if config.server is not None:
        from magsr_tf.serving.clients import RemotePredictor

        return RemotePredictor(config.server, Path(config.model).name, config.version)
    from magsr_tf.inference.export import resolve_model_dir

    model = Path(config.model)
    if not (model.is_dir() and (model / "saved_model.pb").is_file()):
        model = resolve_model_dir(config.model, config.models_root)
    return LocalPredictor(model, config.version)


def predict(
    config: PredictConfig, progress: Callable[[int, int], None] | None = None
) -> list[PredictOutput]:
    """Super-resolves every input and writes ``NAME_sr.npy`` and ``NAME_sr.png``.

    Raises:
        MagsrError: bad inputs, a model folder without SavedModel, a channel
            mismatch, an unreachable server or existing outputs.
    """
    batches = load_inputs(config.inputs, value_range=config.value_range)
    predictor = make_predictor(config)
    out_dir = Path(config.out_dir)
    results = []
    for batch in batches:
        channels = batch.lr.shape[-1]
        if predictor.channels is not None and channels != predictor.channels:
            raise MagsrError(
                f"the model expects {predictor.channels} component(s) but {batch.source} has "
                f"{channels}. Received: shape={batch.lr.shape}"
            )
        targets = [out_dir / f"{batch.name}_sr.npy", out_dir / f"{batch.name}_sr.png"]
        for target in targets:
            if target.exists() and not config.overwrite:
                raise MagsrError(f"{target} already exists; use --overwrite or another --out")
        ratio = predictor.ratio or probe_ratio(predictor, batch.lr)
        padding = config.padding or predictor.padding
        if padding is None:
            padding = "reflect" if is_image_path(batch.source.split(", ")[0]) else "periodic"
        sr = run_predictor(
            predictor,
            batch.lr,
            ratio,
            padding,
            batch_size=config.batch_size,
            max_values=predictor.max_values,
            progress=progress,
        )
        write_npy(targets[0], sr[0] if batch.single else sr)
        write_png(targets[1], sr[0])
        logger.info("%s -> %s", batch.source, targets[0])
        results.append(PredictOutput(batch.name, sr, targets))
    return results
