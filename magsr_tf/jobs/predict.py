"""Super-resolve LR maps with an exported model: locally or through a TF Serving endpoint.

Inputs are read by :func:`magsr_tf.io.inputs.load_inputs` (``.npy``,
``FILE.h5:DATASET[sel]``, 1 or 3 pictures). The same request goes either to the
local SavedModel (:class:`magsr_tf.inference.predictor.LocalPredictor`) or to a
TF Serving REST or gRPC endpoint (:mod:`magsr_tf.serving.clients`; TF Serving
itself or ``magsr-tf serve``). Large maps are cut into overlapping tiles whose
stitched result equals one pass over the whole map.

Memory stays bounded: the SR streams into a ``.npy`` file mapped one tile at a
time (:class:`~magsr_tf.inference.tiling.NpyBands`) and its PNG is encoded in
bands, and what cannot fit the memory limit (``--max-memory``,
``$MAGSR_MAX_MEMORY``, default 80 % of MemAvailable) is refused before any model
is loaded. Each input's ``.npy`` and ``.png`` are written under temporary names
``.tmp-magsr-predict-PID-...`` and renamed only when both are complete; a later
run removes such temporaries whose process PID is gone.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.noise_level import NoiseEstimate, estimate_noise, read_calibration
from magsr_tf.inference.noise_switch import companion_dir, switch_sigma
from magsr_tf.inference.predictor import LocalPredictor, probe_ratio, run_predictor
from magsr_tf.inference.tiling import NpyBands, sr_memory
from magsr_tf.io.inputs import (
    check_memory,
    format_bytes,
    input_shapes,
    load_inputs,
    memory_limit,
    parse_memory,
)
from magsr_tf.io.pictures import is_image_path, write_png
from magsr_tf.io.writers import TEMP_PREFIX, apply_umask, write_json
from magsr_tf.ops.windows import OpenBoundary, check_boundary, check_window, default_boundary

TEMP_TAG = "magsr-predict-"
"""Temporaries of predict are ``.tmp-magsr-predict-PID-NAME-TOKEN.SUFFIX``."""
_STALE = re.compile(rf"^(?:{re.escape(TEMP_PREFIX)})+{re.escape(TEMP_TAG)}(\d+)-")

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
        max_memory: memory limit (``4G``, ``1500M``, bytes); None:
            ``$MAGSR_MAX_MEMORY`` or 80 % of MemAvailable.
        noise: the inputs' noise level per component, recorded as given; None
            estimates it from each map and the model's LR residual
            (:mod:`magsr_tf.inference.noise_level`). Written to ``NAME_predict.json``.
        boundary: "periodic" (a whole simulated lattice) or "open" (a window of a
            larger texture: the map is extended by a continuation of its texture
            before the network sees it, :mod:`magsr_tf.ops.windows`); None: open
            for pictures and microscope files, periodic for ``.npy`` and ``.h5``.
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
    max_memory: str | None = None
    noise: float | None = None
    boundary: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(str(p) for p in self.inputs))
        check_boundary(self.boundary)
        if self.noise is not None and not 0 <= self.noise <= 1:
            raise MagsrError(f"noise must be in [0, 1]. Received: noise={self.noise}")
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
        if self.max_memory is not None:
            parse_memory(self.max_memory)


@dataclass
class PredictOutput:
    """One input's result: the SR maps (read-only, mapped from the ``.npy``) and the files."""

    name: str
    sr: np.ndarray
    files: list[Path] = field(default_factory=list)
    noise: dict | None = None


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Removes predict's temporaries in ``out_dir`` whose writing process is gone.

    The writer's PID is in the name, so a concurrent run (alive) keeps its own; a
    PID reused by an unrelated live process only delays the clean-up.
    """
    removed = []
    if not out_dir.is_dir():
        return removed
    for path in out_dir.iterdir():
        match = _STALE.match(path.name)
        if match and int(match[1]) != os.getpid() and not _pid_alive(int(match[1])):
            path.unlink(missing_ok=True)
            removed.append(path)
            logger.info("removed the stale temporary %s", path)
    return removed


def _model_folder(config: PredictConfig) -> Path | None:
    """The local model's folder (where ``noise_calibration.json`` lives), or None."""
    from magsr_tf.inference.export import resolve_model_dir

    model = Path(config.model)
    if model.is_dir() and (model / "saved_model.pb").is_file():
        return model.parent
    try:
        return Path(resolve_model_dir(config.model, config.models_root))
    except MagsrError:
        return None


def _local_ratio(config: PredictConfig) -> int | None:
    """The local model's ratio from its metadata, without loading TensorFlow."""
    if config.server is not None:
        return None
    from magsr_tf.inference.export import latest_saved_model, read_metadata, resolve_model_dir

    try:
        model = Path(config.model)
        if not (model.is_dir() and (model / "saved_model.pb").is_file()):
            model = resolve_model_dir(config.model, config.models_root)
        ratio = read_metadata(latest_saved_model(model, config.version)).get("ratio")
    except (MagsrError, OSError, ValueError):
        return None  # make_predictor reports it
    return int(ratio) if isinstance(ratio, int) and ratio > 0 else None


def _check_fits(shape, ratio: int, config: PredictConfig, limit: int, source: str) -> None:
    """Refuses an input whose SR does not fit the memory limit or the output's disk."""
    n, h, w, c = shape
    what = f"{source}: super-resolving [{n}x{h}x{w}x{c}] x{ratio}"
    check_memory(sr_memory(shape, ratio, config.batch_size), what, limit)
    folder = Path(config.out_dir).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    sr_bytes = n * h * w * c * ratio**2 * 4
    free = shutil.disk_usage(folder).free
    if sr_bytes > free:
        raise MagsrError(
            f"{what} writes {format_bytes(sr_bytes)} but {folder} has {format_bytes(free)} free"
        )


def _plan(batches, out_dir: Path, overwrite: bool) -> list[list[Path]]:
    """Each input's targets; refuses clashing names or existing files before any work."""
    seen: dict[Path, str] = {}
    plans = []
    for batch in batches:
        targets = [
            out_dir / f"{batch.name}_sr.npy",
            out_dir / f"{batch.name}_sr.png",
            out_dir / f"{batch.name}_predict.json",
        ]
        if targets[0] in seen:
            raise MagsrError(
                f"{seen[targets[0]]} and {batch.source} would both write {targets[0]}; "
                "rename one or predict them into different --out folders"
            )
        seen[targets[0]] = batch.source
        for target in targets:
            if target.exists() and not overwrite:
                raise MagsrError(f"{target} already exists; use --overwrite or another --out")
        plans.append(targets)
    return plans


def _temporary(target: Path) -> Path:
    return target.with_name(
        f"{TEMP_PREFIX}{TEMP_TAG}{os.getpid()}-{target.stem}-{secrets.token_hex(4)}{target.suffix}"
    )


def _write_pair(targets: list[Path], shape, single: bool, fill) -> None:
    """Writes ``.npy`` and ``.png`` to temporaries, renames both only when both are complete."""
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    temps = [_temporary(t) for t in targets[:2]]
    try:
        bands = NpyBands(temps[0], shape, single)
        fill(bands)
        write_png(temps[1], bands.map(0))
        for tmp in temps:
            apply_umask(tmp)
        for tmp, target in zip(temps, targets[:2], strict=True):
            os.replace(tmp, target)
    finally:  # any exception (SIGTERM turned into one, Ctrl-C): no temporary is left
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def predict(
    config: PredictConfig, progress: Callable[[int, int], None] | None = None
) -> list[PredictOutput]:
    """Super-resolves every input and writes ``NAME_sr.npy`` and ``NAME_sr.png``.

    Raises:
        MagsrError: bad inputs, a model folder without SavedModel, a channel
            mismatch, an unreachable server or existing outputs.
    """
    limit = memory_limit(config.max_memory)
    out_dir = Path(config.out_dir)
    remove_stale_temporaries(out_dir)
    hint = _local_ratio(config)
    if hint is not None:  # refuse from the headers, before reading data or loading TF
        for spec, shape in zip(config.inputs, input_shapes(config.inputs), strict=False):
            if shape is not None:
                _check_fits(shape, hint, config, limit, spec)
    batches = load_inputs(config.inputs, value_range=config.value_range, limit=limit)
    boundaries = [config.boundary or default_boundary(batch.source) for batch in batches]
    for batch, boundary in zip(batches, boundaries, strict=True):
        if boundary == "open":  # before any model is loaded or file written
            check_window(batch.lr.shape, batch.source)
    plans = _plan(batches, out_dir, config.overwrite)
    if hint is not None:
        for batch in batches:
            _check_fits(batch.lr.shape, hint, config, limit, batch.source)
    predictor = make_predictor(config)
    calibration, companion = None, None
    if config.server is None:
        folder = _model_folder(config)
        calibration = read_calibration(folder)
        noisy = companion_dir(folder) if folder is not None else None
        if noisy is not None and calibration is not None:
            companion = LocalPredictor(noisy, None)
    for batch in batches:
        channels = batch.lr.shape[-1]
        if predictor.channels is not None and channels != predictor.channels:
            raise MagsrError(
                f"the model expects {predictor.channels} component(s) but {batch.source} has "
                f"{channels}. Received: shape={batch.lr.shape}"
            )
    results = []
    for batch, targets, boundary in zip(batches, plans, boundaries, strict=True):
        ratio = predictor.ratio or probe_ratio(predictor, batch.lr)
        _check_fits(batch.lr.shape, ratio, config, limit, batch.source)
        padding = config.padding or predictor.padding
        if padding is None:
            padding = "reflect" if is_image_path(batch.source.split(", ")[0]) else "periodic"
        clean_fn, noisy_fn_now = predictor, companion
        # A model padded by reflection inside is open-boundary already.
        if boundary == "open" and predictor.padding != "reflect":
            # Tiles end at the map's border, where the wrapper extends them (ops/windows).
            padding = "reflect"
            clean_fn = OpenBoundary(predictor, ratio)
            noisy_fn_now = None if companion is None else OpenBoundary(companion, ratio)
        fns = (clean_fn, noisy_fn_now)
        n, h, w, c = batch.lr.shape

        found = {}

        def fill(out, lr=batch.lr, ratio=ratio, padding=padding, found=found, fns=fns, b=boundary):
            fn, noisy_fn = fns
            options = {"batch_size": config.batch_size, "max_values": predictor.max_values}
            run_predictor(fn, lr, ratio, padding, progress=progress, out=out, **options)
            maps = _MapsOf(out, lr.shape[0])
            rim = 1 if b == "open" else 0
            found["noise"] = predict_noise(lr, maps, ratio, padding, config, calibration, rim)
            # Noisy maps go again through the noise-robust companion (inference/noise_switch).
            level = None if companion is None else switch_sigma(calibration)
            found["companion"] = np.zeros(len(lr), bool)
            if level is not None:
                found["companion"] = found["noise"].sigma >= level
                for i in np.flatnonzero(found["companion"]):
                    sr_i = run_predictor(noisy_fn, lr[i : i + 1], ratio, padding, **options)
                    out[i, slice(None), slice(None)] = sr_i[0]

        _write_pair(targets, (n, h * ratio, w * ratio, c), batch.single, fill)
        sr = np.load(targets[0], mmap_mode="r")
        sr = sr[None] if batch.single else sr
        noise = found["noise"]
        used = found["companion"]
        write_json(
            targets[2],
            {
                "input": batch.source,
                "model": config.model,
                "server": config.server,
                "ratio": ratio,
                "padding": padding,
                "boundary": boundary,
                "shape": [n, h * ratio, w * ratio, c],
                "noise": noise.to_dict(),
                "network": ["noise-robust" if u else "clean" for u in used],
                "outputs": [str(t) for t in targets[:2]],
            },
        )
        logger.info(
            "%s -> %s (LR noise %.4f, %s)",
            batch.source,
            targets[0],
            noise.sigma.mean(),
            noise.method,
        )
        results.append(PredictOutput(batch.name, sr, targets, noise.to_dict()))
    return results


class _MapsOf:
    """``maps[i]`` reads SR map i of an NpyBands file or an array (one map in memory)."""

    def __init__(self, out, n: int):
        self.out, self.n = out, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        if isinstance(self.out, NpyBands):
            return self.out.map(i)[:]
        return np.asarray(self.out[i])


def predict_noise(
    lr, sr, ratio: int, padding: str, config: PredictConfig, calibration, rim: int = 0
):
    """The noise level of each LR map: as given, or from the model's LR residual.

    ``rim``: LR pixels at each edge left out of the residual (1 for open windows).
    """
    if config.noise is not None:
        return NoiseEstimate(np.full(len(lr), float(config.noise)), "given")
    if calibration is not None:
        return estimate_noise(lr, ratio, sr, calibration, padding, rim)
    if ratio <= 4:
        return estimate_noise(lr, ratio)
    return NoiseEstimate(np.full(len(lr), np.nan), "unknown (the model has no noise calibration)")
