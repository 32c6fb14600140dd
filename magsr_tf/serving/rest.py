"""TensorFlow Serving's REST API over the shared :class:`~magsr_tf.serving.core.ServingCore`.

REST endpoints (those of TF Serving, https://www.tensorflow.org/tfx/serving/api_rest):

- ``GET  /v1/models/NAME[/versions/N]``           model version status
- ``GET  /v1/models/NAME[/versions/N]/metadata``  signature definitions
- ``POST /v1/models/NAME[/versions/N]:predict``   row (``instances``) or columnar
  (``inputs``) requests; answers ``{"predictions": ...}`` or ``{"outputs": ...}``

gRPC (``tensorflow.serving.PredictionService`` ``Predict`` and
``GetModelMetadata``, ``ModelService.GetModelStatus``) is in
:mod:`magsr_tf.serving.grpc_api`, started beside REST by
:func:`magsr_tf.serving.launcher.start_servers` when ``ServeConfig.grpc_port``
is set. Both share one ``ServingCore``: the models, the limits and the
accounting below.

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
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.serving.core import ServingCore
from magsr_tf.serving.protocol import (
    JSON_BYTES_PER_VALUE,
    RequestError,
    ServeConfig,
    json_depth_exceeds,
    parse_predict_request,
)
from magsr_tf.serving.repository import ModelRepository

logger = logging.getLogger(__name__)

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[A-Za-z0-9._-]+)"
    r"(?:/versions/(?P<version>[0-9]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?/?$"
)
_READ_CHUNK = 1 << 20


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
