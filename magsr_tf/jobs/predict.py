"""Super-resolve LR maps with an exported model: locally or through a TF Serving endpoint.

Inputs (:func:`load_inputs`):

- ``.npy``: ``[h, w]`` (one component), ``[h, w, C]`` or ``[n, h, w, C]``;
- ``FILE.h5:DATASET`` with an optional slice, e.g. ``data/typeI.h5:lr/x8`` or
  ``data/typeI.h5:lr/x8[0:10]`` (a bare ``FILE.h5`` works when it holds exactly
  one ``lr/x*`` dataset);
- pictures (``.png``, ``.tif``, ...): one image = m_z, three images = m_x, m_y, m_z,
  mapped onto [-1, 1] as ``fit-image`` does (:mod:`magsr_tf.jobs.fit_image`).

The same request goes either to the local SavedModel (:class:`LocalPredictor`)
or to a TF Serving REST endpoint (:class:`RemotePredictor`) or gRPC endpoint
(:class:`GrpcPredictor`; TF Serving itself or ``magsr-tf serve``). Large maps
are cut into overlapping tiles whose stitched result equals one pass over the
whole map (:func:`magsr_tf.jobs.fit_image.tiled_apply`).
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.jobs.fit_image import (
    HIGH_PERCENTILE,
    LOW_PERCENTILE,
    TILE,
    TILE_MARGIN,
    images_to_spins,
    is_image_path,
    save_npy,
    save_png,
    tiled_apply,
)

logger = logging.getLogger(__name__)

H5_SUFFIXES = (".h5", ".hdf5")
VECTOR_LENGTH_TOLERANCE = 1e-3
"""How far beyond 1 an LR vector may reach. LR pixels are averages of unit spins with
non-negative weights that sum to 1, so |m| <= 1 up to rounding: ~1e-7 in float32 (stored
HR spins deviate from 1 by at most 1.2e-7), ~5e-4 for maps stored as float16 (half an ulp
at 1). 1e-3 admits both and still rejects maps that were not made of unit spins (raw
fields, unnormalized magnetization)."""
REMOTE_MAX_VALUES = 1_000_000
"""Output floats per REST request (JSON is ~15 bytes per float)."""
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
    return _as_batch(np.asarray(array), spec)[0]


def _as_batch(array: np.ndarray, source: str) -> tuple[np.ndarray, bool]:
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
    return _as_batch(array, str(path))


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
        import tensorflow as tf

        try:
            out = self._fn(**{self.input_name: tf.constant(lr, dtype=tf.float32)})
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MagsrError(f"the model {self.path} failed on input {lr.shape}: {first}") from exc
        return out[self.output_name].numpy()


class RemotePredictor:
    """Sends ``:predict`` requests to a TF Serving REST endpoint (columnar ``inputs`` format).

    Args:
        server: ``http://HOST:PORT`` or a full ``.../v1/models/NAME`` URL.
        model: model name (ignored when ``server`` already names the model).
        version: a specific version (default: the server's choice, the newest).
        timeout: seconds per request.
    """

    def __init__(self, server: str, model: str, version: int | None = None, timeout: float = 300):
        if not re.match(r"^https?://", server):
            raise MagsrError(
                f"--server must be http(s)://HOST:PORT or grpc://HOST:PORT. Received: {server!r}"
            )
        base = server.rstrip("/")
        if "/v1/models/" not in base:
            base = f"{base}/v1/models/{model}"
        if version is not None and "/versions/" not in base:
            base = f"{base}/versions/{version}"
        self.base = base
        self.timeout = timeout
        self.padding = None
        self.ratio = None
        self.max_values = REMOTE_MAX_VALUES
        meta = self._request("GET", f"{base}/metadata")
        try:
            sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
            ((self.input_name, spec),) = sig["inputs"].items()
            self.output_name = next(iter(sig["outputs"]))
            size = int(spec["tensor_shape"]["dim"][-1]["size"])
            self.channels = size if size > 0 else None
        except (KeyError, TypeError, ValueError, StopIteration) as exc:
            raise MagsrError(f"unexpected metadata from {base}/metadata: {exc!r}") from exc

    def _request(self, method: str, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise MagsrError(f"{url}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise MagsrError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise MagsrError(f"{url} did not answer JSON") from exc

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        answer = self._request(
            "POST",
            f"{self.base}:predict",
            {"signature_name": "serving_default", "inputs": {self.input_name: lr.tolist()}},
        )
        if "error" in answer:
            raise MagsrError(f"{self.base}: {answer['error']}")
        outputs = answer.get("outputs")
        if isinstance(outputs, dict):
            outputs = outputs.get(self.output_name)
        if outputs is None:
            raise MagsrError(f"{self.base}: no outputs in the answer")
        return np.asarray(outputs, dtype=np.float32)


class GrpcPredictor:
    """Sends ``Predict`` calls to TF Serving's gRPC API (``grpc://HOST:PORT``, default port 8500).

    The client of TF Serving's own Python package (``tensorflow_serving.apis``
    ``PredictionServiceStub``), tensors as binary ``TensorProto``; needs
    ``pip install "magsr-tf[deploy]"``.

    Args:
        server: ``grpc://HOST[:PORT]``.
        model: the served model's name.
        version: a specific version (default: the server's choice, the newest).
        timeout: seconds per call.
    """

    def __init__(self, server: str, model: str, version: int | None = None, timeout: float = 300):
        from magsr_tf.serving.grpc_server import CLIENT_MAX_MESSAGE, DEFAULT_PORT, grpc

        match = re.match(r"^grpc://(\[[^\]]+\]|[^:/\[\]]+)(?::(\d+))?/?$", server)
        if match is None:
            raise MagsrError(f"--server must be grpc://HOST[:PORT]. Received: {server!r}")
        self.target = f"{match[1]}:{match[2] or DEFAULT_PORT}"
        self.model = model
        self.version = version
        self.timeout = timeout
        self.padding = None
        self.ratio = None
        self.max_values = REMOTE_MAX_VALUES
        self._grpc = grpc
        self._channel = grpc.insecure_channel(
            self.target,
            options=[
                ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE),
                ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE),
            ],
        )
        from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        answer = self._call(self._stub.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        try:
            answer.metadata["signature_def"].Unpack(sig_map)
            sig = sig_map.signature_def["serving_default"]
            ((self.input_name, spec),) = sig.inputs.items()
            self.output_name = next(iter(sig.outputs))
            size = spec.tensor_shape.dim[-1].size
            self.channels = size if size > 0 else None
        except (KeyError, ValueError, IndexError, StopIteration) as exc:
            raise MagsrError(f"unexpected metadata from {self.target}: {exc!r}") from exc

    def _spec(self, spec) -> None:
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            raise MagsrError(f"grpc://{self.target}: {exc.code().name}: {exc.details()}") from exc

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        from tensorflow_serving.apis import predict_pb2

        from magsr_tf.serving.grpc_server import array_to_proto, proto_to_array
        from magsr_tf.serving.server import RequestError

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        request.model_spec.signature_name = "serving_default"
        request.inputs[self.input_name].CopyFrom(array_to_proto(lr))
        answer = self._call(self._stub.Predict, request)
        if self.output_name not in answer.outputs:
            raise MagsrError(f"grpc://{self.target}: no '{self.output_name}' in the answer")
        try:
            return np.array(proto_to_array(answer.outputs[self.output_name], self.output_name))
        except RequestError as exc:  # the server's answer, not ours, is malformed
            raise MagsrError(f"grpc://{self.target} answered a bad tensor: {exc}") from exc


def run_predictor(
    predictor: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    ratio: int,
    padding: str,
    batch_size: int = 8,
    max_values: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """SR of ``[n, h, w, C]`` maps in batches, tiling large maps (exact; see tiled_apply)."""
    n, h, w, c = lr.shape
    tile = TILE
    if max_values is not None:
        # Keep each request's output within the budget: (tile + 2 margin)^2 r^2 C values.
        edge = int(np.sqrt(max_values / (ratio * ratio * c)))
        tile = max(8, edge - 2 * TILE_MARGIN)
        per_map = (min(h, tile + 2 * TILE_MARGIN) * min(w, tile + 2 * TILE_MARGIN)) * ratio**2 * c
        batch_size = max(1, min(batch_size, max_values // max(1, per_map)))
    out = []
    for start in range(0, n, batch_size):
        part = lr[start : start + batch_size]
        out.append(tiled_apply(predictor, part, ratio, tile=tile, padding=padding))
        if progress is not None:
            progress(min(n, start + batch_size), n)
    return np.concatenate(out)


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
        return GrpcPredictor(config.server, Path(config.model).name, config.version)
    if config.server is not None:
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
        ratio = predictor.ratio or _probe_ratio(predictor, batch.lr)
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
        save_npy(sr[0] if batch.single else sr, targets[0])
        save_png(sr[0], targets[1])
        logger.info("%s -> %s", batch.source, targets[0])
        results.append(PredictOutput(batch.name, sr, targets))
    return results


def _probe_ratio(predictor, lr: np.ndarray) -> int:
    """The up-sampling ratio, measured on a small corner of the input."""
    probe = lr[:1, : min(8, lr.shape[1]), : min(8, lr.shape[2])]
    out = np.asarray(predictor(probe))
    ratio = out.shape[1] // probe.shape[1]
    if out.ndim != 4 or ratio < 1 or out.shape[1] != probe.shape[1] * ratio:
        raise MagsrError(f"the model answered shape {out.shape} for input {probe.shape}")
    return ratio
