"""A small server that speaks TensorFlow Serving's REST API, for machines without TF Serving.

Endpoints (those of TF Serving's REST API, https://www.tensorflow.org/tfx/serving/api_rest):

- ``GET  /v1/models/NAME[/versions/N]``           model version status
- ``GET  /v1/models/NAME[/versions/N]/metadata``  signature definitions
- ``POST /v1/models/NAME[/versions/N]:predict``   row (``instances``) or columnar
  (``inputs``) requests; answers ``{"predictions": ...}`` or ``{"outputs": ...}``

Errors are ``{"error": "..."}`` with a 4xx status (5xx only for faults of the
server itself), and no request can stop the server: bodies and tensor sizes
are bounded, every handler catches its own exceptions, and a slow client times
out. Models are the SavedModels under ``models_root/NAME/VERSION/``, loaded on
first use; the newest version answers when none is named.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from magsr_tf import MagsrError
from magsr_tf.export import SIGNATURE_KEY, saved_model_versions

logger = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[A-Za-z0-9._-]+)"
    r"(?:/versions/(?P<version>[0-9]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)


@dataclass(frozen=True)
class ServeConfig:
    """The local TF-Serving-compatible server.

    Attributes:
        models_root: folder of models (``NAME/VERSION/saved_model.pb``).
        host: interface to bind; loopback by default (use 0.0.0.0 deliberately).
        port: TCP port (0: any free port; TF Serving's REST default is 8501).
        max_body_bytes: largest request body accepted.
        max_input_values: largest LR tensor per request (batch * h * w * C).
        max_output_values: largest SR tensor per request (input values * r^2);
            bounds the memory of one answer (JSON takes ~20 bytes per value).
        request_timeout: seconds a client may take to send its request.
    """

    models_root: Path = Path("saved_models")
    host: str = "127.0.0.1"
    port: int = 8501
    max_body_bytes: int = 64 * 1024 * 1024
    max_input_values: int = 3 * 256 * 256
    max_output_values: int = 3 * 1024 * 1024
    request_timeout: float = 30.0

    def __post_init__(self):
        if not 0 <= self.port <= 65535:
            raise MagsrError(f"port must be in 0..65535. Received: port={self.port}")
        if min(self.max_body_bytes, self.max_input_values, self.max_output_values) < 1:
            raise MagsrError("the request limits must be positive")


class RequestError(Exception):
    """A client error: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class ModelRepository:
    """SavedModels under a root folder, loaded lazily and cached per (name, version)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._loaded: dict[tuple[str, int], object] = {}
        self._ratios: dict[tuple[str, int], int] = {}
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
            from magsr_tf.export import read_metadata

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

    def metadata(self, name: str, version: int) -> dict:
        """TF Serving's ``GetModelMetadata`` answer (the SignatureDefMap as JSON)."""
        from google.protobuf import json_format
        from tensorflow.python.saved_model import loader_impl
        from tensorflow_serving.apis import get_model_metadata_pb2

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
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {
                "signature_def": json_format.MessageToDict(
                    sig_map, preserving_proto_field_name=True
                )
            },
        }


def _to_tensor(value, what: str, max_values: int) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is not a numeric tensor") from exc
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

    # The server object carries the repository and the configuration.
    @property
    def config(self) -> ServeConfig:
        return self.server.config

    @property
    def repo(self) -> ModelRepository:
        return self.server.repo

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
        raw = self.rfile.read(size)
        self._body_read = True
        if len(raw) != size:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, "incomplete body")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {exc}") from exc

    def _post(self, route, name: str, version: int | None) -> None:
        verb = route["verb"]
        if route["metadata"] or verb is None:
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, "POST needs :predict")
        if verb != "predict":
            raise RequestError(HTTPStatus.BAD_REQUEST, f"only :predict is served, not :{verb}")
        resolved = self.repo.resolve(name, version)
        body = self._read_json()
        fn = self.repo.signature(name, resolved)
        _, spec = fn.structured_input_signature
        ((input_name, tensor_spec),) = spec.items()
        (output_name,) = fn.structured_outputs
        lr, rows = parse_predict_request(body, input_name, self.config.max_input_values)
        channels = tensor_spec.shape[-1]
        if channels is not None and lr.shape[-1] != channels:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"{name} expects {channels} component(s), got {lr.shape[-1]}. "
                f"Received: shape={list(lr.shape)}",
            )
        ratio = self.repo.ratio(name, resolved)
        if lr.size * ratio * ratio > self.config.max_output_values:
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the answer would hold {lr.size * ratio * ratio} values (x{ratio}); the limit "
                f"is {self.config.max_output_values} per request: send smaller tiles",
            )
        import tensorflow as tf

        try:
            sr = fn(**{input_name: tf.constant(lr)})[output_name].numpy()
        except (tf.errors.InvalidArgumentError, ValueError) as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc).splitlines()[0]) from exc
        if rows:
            self._send(HTTPStatus.OK, {"predictions": sr.tolist()})
        else:
            self._send(HTTPStatus.OK, {"outputs": sr.tolist()})

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    def _not_allowed(self):
        self._body_read = False
        self._discard_body()
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported"})

    do_PUT = do_DELETE = do_PATCH = _not_allowed  # noqa: N815


class ModelServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the :class:`ModelRepository` and the configuration."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, config: ServeConfig):
        self.config = config
        self.repo = ModelRepository(config.models_root)
        super().__init__((config.host, config.port), _Handler)

    def handle_error(self, request, client_address):
        # socketserver would print a traceback on stderr; log it and keep serving.
        logger.exception("error while handling a request from %s", client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(config: ServeConfig) -> ModelServer:
    """Binds the server (without serving yet); ``server.url`` tells the bound address.

    Raises:
        MagsrError: no models root, or the port cannot be bound.
    """
    root = Path(config.models_root)
    if not root.is_dir():
        raise MagsrError(f"models root {root} does not exist")
    try:
        return ModelServer(config)
    except OSError as exc:
        raise MagsrError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc


def available_models(root: Path) -> dict[str, list[int]]:
    """Models and versions the server would answer for."""
    from magsr_tf.export import list_served_models

    return list_served_models(root)
