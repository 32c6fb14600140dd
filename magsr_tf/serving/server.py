"""A local server that speaks TensorFlow Serving's REST and gRPC APIs.

REST endpoints (those of TF Serving, https://www.tensorflow.org/tfx/serving/api_rest):

- ``GET  /v1/models/NAME[/versions/N]``           model version status
- ``GET  /v1/models/NAME[/versions/N]/metadata``  signature definitions
- ``POST /v1/models/NAME[/versions/N]:predict``   row (``instances``) or columnar
  (``inputs``) requests; answers ``{"predictions": ...}`` or ``{"outputs": ...}``

gRPC (``tensorflow.serving.PredictionService`` ``Predict`` and
``GetModelMetadata``, ``ModelService.GetModelStatus``) is in
:mod:`magsr_tf.serving.grpc_server`, started beside REST by :func:`start_servers` when
``ServeConfig.grpc_port`` is set. Both share one :class:`ServingCore`: the
models, the limits and the accounting below.

Errors are ``{"error": "..."}`` with a 4xx status (5xx only for faults of the
server itself or when it is busy), and no request can stop the server:

- bodies are bounded (413) and checked for nesting depth before they are
  parsed (400), tensor sizes are bounded before anything is computed (413);
- at most ``max_inflight`` predict requests are admitted at once (REST and
  gRPC together; the next ones get 503 / ``RESOURCE_EXHAUSTED`` at once),
  at most ``max_concurrent`` of them run the model at the same time (the
  others wait up to ``queue_timeout``), and the memory their tensors and
  answers hold is reserved from ``memory_budget`` before computing;
- every handler catches its own exceptions and a slow client times out.

Models are the SavedModels under ``models_root/NAME/VERSION/``, loaded on first
use; the newest version answers when none is named.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.export import SIGNATURE_KEY, saved_model_versions

logger = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[A-Za-z0-9._-]+)"
    r"(?:/versions/(?P<version>[0-9]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)

JSON_BYTES_PER_VALUE = 64
"""Memory one answer value holds while a REST answer is built: a Python float
(24 bytes) and its list slot (8) from ``tolist``, its JSON text (~21 bytes,
measured on unit spins) and the encoded copy of that text."""
BINARY_BYTES_PER_VALUE = 12
"""Memory one answer value holds in a gRPC answer: the array, the TensorProto's
``tensor_content`` and the serialized message (4 bytes each)."""
_OPENERS = b"[{"
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
_DEPTH_CHUNK = 1 << 20
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ServeConfig:
    """The local TF-Serving-compatible server.

    Attributes:
        models_root: folder of models (``NAME/VERSION/saved_model.pb``).
        host: interface to bind; loopback by default (use 0.0.0.0 deliberately).
        port: REST TCP port (0: any free port; TF Serving's REST default is 8501).
        grpc_port: gRPC TCP port (TF Serving's default is 8500; 0: any free
            port; None: no gRPC). Needs ``pip install "magsr-tf[deploy]"``.
        max_body_bytes: largest REST body or gRPC message accepted.
        max_json_depth: deepest nesting of brackets in a REST body (a predict
            request needs at most 6); deeper bodies get 400 before parsing.
        max_input_values: largest LR tensor per request (batch * h * w * C).
        max_output_values: largest SR tensor per request (input values * r^2);
            bounds the memory of one answer (JSON takes ~20 bytes per value).
        max_inflight: predict requests admitted at once, REST and gRPC
            together, from reading the body to sending the answer; more get
            503 / RESOURCE_EXHAUSTED at once (clients retry).
        max_concurrent: model calls running at the same time (TensorFlow
            spreads each call over the cores already).
        memory_budget: bytes that the admitted requests' tensors and answers
            may hold together (reserved before computing; a request waits for
            its share, up to ``queue_timeout``).
        queue_timeout: seconds a request waits for a model slot or its memory
            before it gets 503 / RESOURCE_EXHAUSTED.
        max_connections: open REST connections (each holds a thread); more are
            answered 503 and closed.
        request_timeout: seconds a client may take to send its request.
        batch_maps: 0: every request is one model call. N > 1: requests of
            fewer than N maps are merged with concurrent ones of the same map
            size into calls of up to N maps (:class:`Batcher`).
        batch_timeout: seconds the first request of a merged call waits for others.
    """

    models_root: Path = Path("saved_models")
    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    max_json_depth: int = 16
    max_input_values: int = 3 * 256 * 256
    max_output_values: int = 3 * 1024 * 1024
    max_inflight: int = 32
    max_concurrent: int = 2
    memory_budget: int = 1024 * 1024 * 1024
    queue_timeout: float = 30.0
    max_connections: int = 256
    request_timeout: float = 30.0
    batch_maps: int = 0
    batch_timeout: float = 0.002

    def __post_init__(self):
        for name in ("port", "grpc_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise MagsrError(f"{name} must be in 0..65535. Received: {name}={port}")
        limits = (
            "max_body_bytes",
            "max_json_depth",
            "max_input_values",
            "max_output_values",
            "max_inflight",
            "max_concurrent",
            "memory_budget",
            "max_connections",
        )
        for name in limits:
            if getattr(self, name) < 1:
                raise MagsrError(f"{name} must be positive. Received: {name}={getattr(self, name)}")
        if self.queue_timeout <= 0 or self.request_timeout <= 0:
            raise MagsrError("queue_timeout and request_timeout must be positive")
        if self.batch_maps < 0 or self.batch_timeout < 0:
            raise MagsrError(
                "batch_maps and batch_timeout must be >= 0. "
                f"Received: batch_maps={self.batch_maps}, batch_timeout={self.batch_timeout}"
            )


class RequestError(Exception):
    """A client error: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class Busy(RequestError):
    """The server is at its limits: 503 / RESOURCE_EXHAUSTED, the client should retry."""

    def __init__(self, message: str):
        super().__init__(HTTPStatus.SERVICE_UNAVAILABLE, message)


def json_depth_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the brackets of a JSON text nest deeper than ``limit``.

    Checked before ``json.loads``, whose recursion a body of 50,000 ``[`` would
    exhaust. Brackets inside strings count too: a conservative bound (requests
    of this API hold numbers, not strings with brackets). Runs in C (bytes
    translate, NumPy cumsum) in chunks, so a 16 MB body costs a few ms and
    bounded memory.
    """
    brackets = np.frombuffer(raw.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    level = 0
    for start in range(0, brackets.size, _DEPTH_CHUNK):
        chunk = brackets[start : start + _DEPTH_CHUNK]
        steps = np.where((chunk == _OPENERS[0]) | (chunk == _OPENERS[1]), 1, -1)
        depth = np.cumsum(steps, dtype=np.int64) + level
        if depth.max() > limit:
            return True
        level = int(depth[-1])
    return False


class Gate:
    """Admission, model slots and the memory budget shared by every request.

    Args:
        max_inflight: requests admitted at once (more: :class:`Busy` at once).
        max_concurrent: model calls at once (more wait, up to ``queue_timeout``).
        memory_budget: bytes the admitted requests may reserve together.
        queue_timeout: seconds to wait for a model slot or for memory.
    """

    def __init__(
        self, max_inflight: int, max_concurrent: int, memory_budget: int, queue_timeout: float
    ):
        self.max_inflight = max_inflight
        self.memory_budget = memory_budget
        self.queue_timeout = queue_timeout
        self._lock = threading.Lock()
        self._inflight = 0
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._memory = threading.Condition()
        self._reserved = 0
        self.rejected = 0
        """Requests answered 503 / RESOURCE_EXHAUSTED so far."""

    @property
    def inflight(self) -> int:
        """Requests admitted now."""
        return self._inflight

    @property
    def reserved(self) -> int:
        """Bytes reserved now."""
        return self._reserved

    def _busy(self, message: str) -> Busy:
        with self._lock:
            self.rejected += 1
        return Busy(message)

    @contextmanager
    def admit(self) -> Iterator[None]:
        """One admitted request, from reading its body to its answer."""
        with self._lock:
            full = self._inflight >= self.max_inflight
            if not full:
                self._inflight += 1
        if full:
            raise self._busy(
                f"server busy: {self.max_inflight} requests in progress; retry shortly"
            )
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Holds ``nbytes`` of the memory budget (waits for it up to ``queue_timeout``)."""
        if nbytes > self.memory_budget:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the request needs ~{nbytes} bytes; the server's budget is {self.memory_budget}",
            )
        with self._memory:
            fits = self._memory.wait_for(
                lambda: self._reserved + nbytes <= self.memory_budget, self.queue_timeout
            )
            if fits:
                self._reserved += nbytes
        if not fits:
            raise self._busy("server busy: memory budget in use; retry shortly")
        try:
            yield
        finally:
            with self._memory:
                self._reserved -= nbytes
                self._memory.notify_all()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One model call (waits for a free slot up to ``queue_timeout``)."""
        if not self._slots.acquire(timeout=self.queue_timeout):
            raise self._busy("server busy: all model slots in use; retry shortly")
        try:
            yield
        finally:
            self._slots.release()


@dataclass(frozen=True)
class Servable:
    """One loaded model version and its signature's names.

    Attributes:
        name: model name.
        version: version number.
        fn: the ``serving_default`` concrete function.
        input_name: its one input (``lr``).
        output_name: its one output (``sr``).
        channels: the input's component count (None: any).
        ratio: the up-sampling ratio.
    """

    name: str
    version: int
    fn: object
    input_name: str
    output_name: str
    channels: int | None
    ratio: int


class ModelRepository:
    """SavedModels under a root folder, loaded lazily and cached per (name, version)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], object] = {}
        self._ratios: dict[tuple[str, int], int] = {}
        self._servables: dict[tuple[str, int], Servable] = {}
        self._lock = threading.Lock()

    def versions(self, name: str) -> list[int]:
        if name.startswith(".") or "/" in name:
            return []
        return saved_model_versions(self.root / name)

    def resolve(self, name: str, version: int | None) -> int:
        versions = self.versions(name)
        if not versions:
            raise RequestError(HTTPStatus.NOT_FOUND, f"Servable not found for request: {name}")
        if version is None:
            return versions[-1]
        if version not in versions:
            raise RequestError(
                HTTPStatus.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return version

    def signature(self, name: str, version: int):
        """The ``serving_default`` concrete function (loading the SavedModel once)."""
        key = (name, version)
        with self._lock:
            if key not in self._loaded:
                import tensorflow as tf

                path = self.root / name / str(version)
                try:
                    self._loaded[key] = tf.saved_model.load(str(path))
                except Exception as exc:
                    logger.exception("cannot load %s", path)
                    raise RequestError(
                        HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot load {name} v{version}: {exc}"
                    ) from exc
            loaded = self._loaded[key]
        if SIGNATURE_KEY not in loaded.signatures:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{name} has no {SIGNATURE_KEY} signature")
        return loaded.signatures[SIGNATURE_KEY]

    def ratio(self, name: str, version: int) -> int:
        """The model's up-sampling ratio: from its magsr_tf metadata, else one tiny probe."""
        key = (name, version)
        if key not in self._ratios:
            from magsr_tf.inference.export import read_metadata

            ratio = read_metadata(self.root / name / str(version)).get("ratio")
            if not isinstance(ratio, int) or ratio < 1:
                import tensorflow as tf

                fn = self.signature(name, version)
                _, spec = fn.structured_input_signature
                ((input_name, tensor_spec),) = spec.items()
                probe = tf.zeros((1, 4, 4, tensor_spec.shape[-1] or 1), tf.float32)
                (out,) = fn(**{input_name: probe}).values()
                ratio = max(1, int(out.shape[1]) // 4)
            self._ratios[key] = ratio
        return self._ratios[key]

    def servable(self, name: str, version: int | None) -> Servable:
        """The loaded model ``name`` (newest version when ``version`` is None)."""
        version = self.resolve(name, version)
        key = (name, version)
        if key not in self._servables:
            fn = self.signature(name, version)
            _, spec = fn.structured_input_signature
            ((input_name, tensor_spec),) = spec.items()
            (output_name,) = fn.structured_outputs
            channels = tensor_spec.shape[-1]
            self._servables[key] = Servable(
                name,
                version,
                fn,
                input_name,
                output_name,
                None if channels is None else int(channels),
                self.ratio(name, version),
            )
        return self._servables[key]

    def signature_def_map(self, name: str, version: int):
        """The SavedModel's signatures as TF Serving's ``SignatureDefMap`` proto."""
        from tensorflow.python.saved_model import loader_impl

        try:
            from tensorflow_serving.apis import get_model_metadata_pb2
        except ImportError as exc:
            raise RequestError(
                HTTPStatus.NOT_IMPLEMENTED,
                'metadata needs tensorflow-serving-api: pip install "magsr-tf[deploy]"',
            ) from exc

        try:
            saved = loader_impl.parse_saved_model(str(self.root / name / str(version)))
        except Exception as exc:
            raise RequestError(
                HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot read {name} v{version}: {exc}"
            ) from exc
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in saved.meta_graphs[0].signature_def.items():
            if not key.startswith("__"):
                sig_map.signature_def[key].CopyFrom(sig)
        return sig_map

    def metadata(self, name: str, version: int) -> dict:
        """TF Serving's ``GetModelMetadata`` answer (the SignatureDefMap as JSON)."""
        from google.protobuf import json_format

        sig_map = self.signature_def_map(name, version)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    sig_map, preserving_proto_field_name=True
                )
            },
        }


def _run_model(servable: Servable, lr: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    try:
        out = servable.fn(**{servable.input_name: tf.constant(lr)})
        return out[servable.output_name].numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, str(exc).splitlines()[0]) from exc


class _Pending:
    """One request waiting in a :class:`Batcher`: its maps, then its answer or error."""

    def __init__(self, lr: np.ndarray):
        self.lr = lr
        self.done = threading.Event()
        self.sr: np.ndarray | None = None
        self.error: BaseException | None = None


class Batcher:
    """Merges concurrent requests of one model and map size into larger model calls.

    TF Serving's ``--enable_batching`` for this server: a call at batch 8 costs
    far less than 8 calls at batch 1 (in-process x8 on 16x16 maps here: 33.7
    calls/s at batch 8 vs 147 at batch 1, i.e. 270 vs 147 maps/s). Each of
    ``workers`` threads takes the oldest waiting request, adds the next ones of
    the same map size while they fit in ``max_maps`` and arrive within
    ``timeout`` seconds, runs the model once in a model slot of ``gate`` and
    hands each request its part of the answer.

    Args:
        servable: the model.
        gate: the server's gate (model slots).
        max_maps: maps per model call at most.
        timeout: seconds the first request of a call waits for company.
        workers: threads forming calls (the server's ``max_concurrent``).
    """

    def __init__(self, servable: Servable, gate: Gate, max_maps: int, timeout: float, workers: int):
        import queue

        self.servable = servable
        self.gate = gate
        self.max_maps = max_maps
        self.timeout = timeout
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._empty = queue.Empty
        self.calls = 0
        """Model calls made so far (tests and logs)."""
        self._workers = workers
        for k in range(workers):
            name = f"batcher-{servable.name}-{k}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def run(self, lr: np.ndarray) -> np.ndarray:
        """The SR of ``lr``, computed with whatever else waits at the same time."""
        pending = _Pending(lr)
        self._queue.put(pending)
        # The workers answer every request within their model-slot wait; this is a backstop.
        if not pending.done.wait(2 * self.gate.queue_timeout + 60):
            raise Busy("server busy: no model call formed in time; retry shortly")
        if pending.error is not None:
            raise pending.error
        return pending.sr

    def close(self) -> None:
        """Ends the worker threads once the requests queued before are answered."""
        for _ in range(self._workers):
            self._queue.put(None)

    def _work(self) -> None:
        held: _Pending | None = None  # a request of another size, first of the next call
        while True:
            first = held or self._queue.get()
            held = None
            if first is None:
                return
            group, maps = [first], first.lr.shape[0]
            deadline = time.monotonic() + self.timeout
            while maps < self.max_maps:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except self._empty:
                    break
                if item is None:  # closing: answer this group, then stop
                    self._queue.put(None)
                    break
                if item.lr.shape[1:] != first.lr.shape[1:] or maps + item.lr.shape[0] > (
                    self.max_maps
                ):
                    held = item
                    break
                group.append(item)
                maps += item.lr.shape[0]
            self._run(group)

    def _run(self, group: list[_Pending]) -> None:
        try:
            lr = group[0].lr if len(group) == 1 else np.concatenate([p.lr for p in group])
            with self.gate.slot():
                sr = _run_model(self.servable, lr)
            self.calls += 1
            start = 0
            for p in group:
                p.sr = sr[start : start + p.lr.shape[0]]
                start += p.lr.shape[0]
        except BaseException as exc:  # every waiting request must be answered
            for p in group:
                p.error = exc
        finally:
            for p in group:
                p.done.set()


class ServingCore:
    """What REST and gRPC share: the models, the limits and the model call.

    Args:
        config: the server's configuration.
    """

    def __init__(self, config: ServeConfig):
        self.config = config
        self.repo = ModelRepository(config.models_root)
        self.gate = Gate(
            config.max_inflight, config.max_concurrent, config.memory_budget, config.queue_timeout
        )
        self._batchers: dict[tuple[str, int], Batcher] = {}
        self._batchers_lock = threading.Lock()

    def batcher(self, servable: Servable) -> Batcher:
        """The :class:`Batcher` of ``servable`` (started on first use)."""
        key = (servable.name, servable.version)
        with self._batchers_lock:
            if key not in self._batchers:
                self._batchers[key] = Batcher(
                    servable,
                    self.gate,
                    self.config.batch_maps,
                    self.config.batch_timeout,
                    self.config.max_concurrent,
                )
            return self._batchers[key]

    def close(self) -> None:
        """Stops the batchers' threads (the server has stopped taking requests)."""
        with self._batchers_lock:
            for batcher in self._batchers.values():
                batcher.close()
            self._batchers.clear()

    def check_input(self, servable: Servable, lr: np.ndarray) -> int:
        """Checks an LR batch against the model and the limits; returns the answer's size."""
        if servable.channels is not None and lr.shape[-1] != servable.channels:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"{servable.name} expects {servable.channels} component(s), got "
                f"{lr.shape[-1]}. Received: shape={list(lr.shape)}",
            )
        out_values = lr.size * servable.ratio**2
        if out_values > self.config.max_output_values:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the answer would hold {out_values} values (x{servable.ratio}); the limit "
                f"is {self.config.max_output_values} per request: send smaller tiles",
            )
        return out_values

    @contextmanager
    def predict(
        self, servable: Servable, lr: np.ndarray, bytes_per_value: int
    ) -> Iterator[np.ndarray]:
        """The SR batch of ``lr``, its memory reserved until the ``with`` block ends.

        Args:
            servable: the model.
            lr: float32 ``[batch, h, w, C]``, already checked by :func:`check_input`.
            bytes_per_value: memory one answer value holds until it is sent
                (:data:`JSON_BYTES_PER_VALUE` or :data:`BINARY_BYTES_PER_VALUE`).
        """
        out_values = self.check_input(servable, lr)
        with self.gate.reserve(lr.nbytes + out_values * bytes_per_value):
            if 0 < lr.shape[0] < self.config.batch_maps:
                sr = self.batcher(servable).run(lr)
            else:
                with self.gate.slot():
                    sr = _run_model(servable, lr)
            yield sr


def check_tensor(array: np.ndarray, what: str, max_values: int) -> np.ndarray:
    """Checks a decoded LR tensor: rank 4, not empty, bounded, finite."""
    if array.ndim != 4:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"{what} must be [batch, h, w, C]. Received: shape={list(array.shape)}",
        )
    if array.size > max_values:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{what} has {array.size} values; the limit is {max_values} per request",
        )
    if min(array.shape) < 1:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is empty")
    if not np.isfinite(array).all():
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} contains NaN or inf")
    return array


def _to_tensor(value, what: str, max_values: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is not a numeric tensor") from exc
    return check_tensor(array, what, max_values)


def parse_predict_request(body: dict, input_name: str, max_values: int) -> tuple[np.ndarray, bool]:
    """The LR tensor of a TF Serving predict request, and whether it was row format."""
    if not isinstance(body, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
    sig = body.get("signature_name", SIGNATURE_KEY)
    if sig not in (SIGNATURE_KEY, "", None):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"unknown signature_name {sig!r}")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "give exactly one of 'instances' (row) or 'inputs' (columnar)"
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise RequestError(HTTPStatus.BAD_REQUEST, "'instances' must be a non-empty list")
        if all(isinstance(x, dict) for x in instances):
            if any(set(x) != {input_name} for x in instances):
                raise RequestError(
                    HTTPStatus.BAD_REQUEST, f"each instance must hold exactly '{input_name}'"
                )
            instances = [x[input_name] for x in instances]
        return _to_tensor(instances, "instances", max_values), True
    inputs = body["inputs"]
    if isinstance(inputs, dict):
        if set(inputs) != {input_name}:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"inputs must name exactly '{input_name}'. Received: {sorted(inputs)}",
            )
        inputs = inputs[input_name]
    return _to_tensor(inputs, "inputs", max_values), False


class _Handler(BaseHTTPRequestHandler):
    server_version = "magsr-tf-serve"
    protocol_version = "HTTP/1.1"
    _body_read = False

    # The server object carries the shared core and the configuration.
    @property
    def config(self) -> ServeConfig:
        return self.server.config

    @property
    def core(self) -> ServingCore:
        return self.server.core

    @property
    def repo(self) -> ModelRepository:
        return self.server.core.repo

    def setup(self):
        super().setup()
        self.connection.settimeout(self.server.config.request_timeout)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logger.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        if self.close_connection:
            self.send_header("Connection", "close")
        if status == HTTPStatus.SERVICE_UNAVAILABLE:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _handle(self, method: str) -> None:
        self._body_read = False
        try:
            route = _ROUTE.match(self.path.split("?", 1)[0])
            if route is None:
                raise RequestError(HTTPStatus.NOT_FOUND, f"unknown path {self.path!r}")
            name = route["name"]
            version = int(route["version"]) if route["version"] else None
            if method == "GET":
                self._get(route, name, version)
            else:
                self._post(route, name, version)
        except RequestError as exc:
            self._discard_body()
            self._send(exc.status, {"error": str(exc)})
        except Exception as exc:  # the server must survive anything a client sends
            logger.exception("internal error on %s %s", method, self.path)
            self._discard_body()
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {exc}"})

    def _discard_body(self) -> None:
        # An unread body would be parsed as the next request on a kept-alive connection.
        if not self._body_read:
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        """Protocol-level errors (bad request line, headers) as JSON too."""
        self.close_connection = True
        try:
            self._send(HTTPStatus(code), {"error": message or HTTPStatus(code).phrase})
        except OSError:
            pass

    def handle_expect_100(self):
        """Refuses a too large body before the client sends it (curl asks above 1 MB)."""
        try:
            size = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            size = 0
        limit = self.config.max_body_bytes
        if size > limit:
            self.close_connection = True
            message = f"body of {size} bytes exceeds the limit of {limit}"
            self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": message})
            return False
        return super().handle_expect_100()

    def _get(self, route, name: str, version: int | None) -> None:
        if route["verb"]:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f":{route['verb']} needs POST")
        resolved = self.repo.resolve(name, version)
        if route["metadata"]:
            self._send(HTTPStatus.OK, self.repo.metadata(name, resolved))
            return
        shown = [resolved] if version is not None else self.repo.versions(name)[::-1]
        self._send(
            HTTPStatus.OK,
            {
                "model_version_status": [
                    {
                        "version": str(v),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                    for v in shown
                ]
            },
        )

    def _read_body(self, size: int) -> bytes:
        """The body, within ``request_timeout`` in all (the socket timeout alone is per
        read: a client sending a byte now and then would hold its admission forever)."""
        timeout = self.config.request_timeout
        deadline = time.monotonic() + timeout
        chunks, remaining = [], size
        try:
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, _READ_CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError as exc:
            self._body_read = True
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT, f"the body took longer than {timeout:g} s"
            ) from exc
        finally:
            self.connection.settimeout(timeout)
        return b"".join(chunks)

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not accepted")
        if length is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            size = int(length)
        except ValueError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from exc
        if size < 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if size > self.config.max_body_bytes:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {size} bytes exceeds the limit of {self.config.max_body_bytes}",
            )
        raw = self._read_body(size)
        self._body_read = True
        if len(raw) != size:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, "incomplete body")
        if json_depth_exceeds(raw, self.config.max_json_depth):
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"JSON nested deeper than {self.config.max_json_depth} levels",
            )
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {exc}") from exc

    def _post(self, route, name: str, version: int | None) -> None:
        verb = route["verb"]
        if route["metadata"] or verb is None:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "POST needs :predict")
        if verb != "predict":
            raise RequestError(HTTPStatus.BAD_REQUEST, f"only :predict is served, not :{verb}")
        self.repo.resolve(name, version)
        # Admitted before the body is read: the bodies held at once are bounded too.
        with self.core.gate.admit():
            body = self._read_json()
            servable = self.repo.servable(name, version)
            lr, rows = parse_predict_request(
                body, servable.input_name, self.config.max_input_values
            )
            del body  # the nested lists take ~10x the array's memory
            with self.core.predict(servable, lr, JSON_BYTES_PER_VALUE) as sr:
                self._send(HTTPStatus.OK, {"predictions" if rows else "outputs": sr.tolist()})

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def _not_allowed(self):
        self._body_read = False
        self._discard_body()
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815


_BUSY_BODY = b'{"error": "too many open connections; retry shortly"}'
_TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


class ModelServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the :class:`ServingCore` and the configuration.

    Args:
        config: the configuration.
        core: the core to share with a gRPC server (default: a new one).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: ServeConfig, core: ServingCore | None = None):
        self.config = config
        self.core = core or ServingCore(config)
        self._connections = 0
        self._connections_lock = threading.Lock()
        super().__init__((config.host, config.port), _Handler)

    @property
    def repo(self) -> ModelRepository:
        return self.core.repo

    def process_request(self, request, client_address):
        # One thread per connection: bound them, answering the surplus at once.
        with self._connections_lock:
            full = self._connections >= self.config.max_connections
            if not full:
                self._connections += 1
        if full:
            try:
                request.sendall(_TOO_MANY_CONNECTIONS)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            with self._connections_lock:
                self._connections -= 1
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections -= 1

    def handle_error(self, request, client_address):
        # socketserver would print a traceback on stderr; log it and keep serving.
        logger.exception("error while handling a request from %s", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(config: ServeConfig, core: ServingCore | None = None) -> ModelServer:
    """Binds the REST server (without serving yet); ``server.url`` tells the bound address.

    Raises:
        MagsrError: no models root, or the port cannot be bound.
    """
    root = Path(config.models_root)
    if not root.is_dir():
        raise MagsrError(f"models root {root} does not exist")
    try:
        return ModelServer(config, core)
    except OSError as exc:
        raise MagsrError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc


class Servers:
    """The running REST server and, if configured, the gRPC server beside it.

    Attributes:
        core: the shared :class:`ServingCore`.
        rest: the REST :class:`ModelServer`.
        grpc: the ``grpc.Server`` (None without ``grpc_port``).
        grpc_port: the bound gRPC port (None without gRPC).
    """

    def __init__(self, core: ServingCore, rest: ModelServer, grpc_server, grpc_port: int | None):
        self.core = core
        self.rest = rest
        self.grpc = grpc_server
        self.grpc_port = grpc_port
        self._thread = threading.Thread(target=rest.serve_forever, daemon=True, name="rest")
        self._thread.start()

    @property
    def rest_url(self) -> str:
        """``http://HOST:PORT`` of the REST API."""
        return self.rest.url

    @property
    def grpc_target(self) -> str | None:
        """``HOST:PORT`` of the gRPC API (None without gRPC)."""
        if self.grpc_port is None:
            return None
        return f"{_grpc_host(self.core.config.host)}:{self.grpc_port}"

    @property
    def alive(self) -> bool:
        """Whether the REST server is still serving."""
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Blocks while the REST server runs (until :meth:`stop` or Ctrl-C)."""
        self._thread.join(timeout)

    def stop(self, grace: float = 1.0) -> None:
        """Stops both servers and closes their sockets."""
        if self.grpc is not None:
            self.grpc.stop(grace).wait(grace + 5)
        self.rest.shutdown()
        self.rest.server_close()
        self._thread.join(timeout=10)
        self.core.close()


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def start_servers(config: ServeConfig) -> Servers:
    """Starts REST on ``config.port`` and gRPC on ``config.grpc_port`` (if set), in threads.

    Raises:
        MagsrError: no models root, a port that cannot be bound, or gRPC asked
            for without ``grpcio`` / ``tensorflow-serving-api``.
    """
    core = ServingCore(config)
    grpc_server = grpc_port = None
    if config.grpc_port is not None:
        if not Path(config.models_root).is_dir():
            raise MagsrError(f"models root {config.models_root} does not exist")
        from magsr_tf.serving.grpc_server import make_grpc_server

        grpc_server, grpc_port = make_grpc_server(config, core)
    try:
        rest = make_server(config, core)
    except MagsrError:
        if grpc_server is not None:
            grpc_server.stop(0)
        raise
    if grpc_server is not None:
        grpc_server.start()
    return Servers(core, rest, grpc_server, grpc_port)


def available_models(root: Path) -> dict[str, list[int]]:
    """Models and versions the server would answer for."""
    from magsr_tf.inference.export import list_served_models

    return list_served_models(root)
