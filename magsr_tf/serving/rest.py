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
- every handler catches its own exceptions; a whole request (line, headers
  and body) must arrive within ``request_timeout`` (408), and ambiguous
  framing (two ``Content-Length``, one beside ``Transfer-Encoding``, one not
  plain digits) is 400: no request smuggling behind a proxy;
- error texts carry no server paths (relative to the models root).

Models are the SavedModels under ``models_root/NAME/VERSION/``, loaded on first
use; the newest version answers when none is named.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
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
_DIGITS = re.compile(r"[0-9]{1,19}")


class _RequestTimeout(TimeoutError):
    """The whole request (line, headers and body) took longer than ``request_timeout``."""


class _DeadlineReader(io.RawIOBase):
    """A connection's reads under one deadline per request.

    A socket timeout bounds each read alone: a client sending a header byte
    every second would hold its connection (and a thread, and one of the
    ``max_connections``) forever. The deadline starts with the first byte of
    a request (waiting for it is bounded by the socket timeout, which closes
    idle kept-alive connections) and covers its line, headers and body.
    """

    def __init__(self, sock, timeout: float):
        self._sock = sock
        self.timeout = timeout
        self.deadline: float | None = None
        self.expired = False
        """Whether a read of the current request hit the deadline."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.expired = True
                raise _RequestTimeout(f"the request took longer than {self.timeout:g} s")
            self._sock.settimeout(left)
        try:
            n = self._sock.recv_into(buffer)
        except TimeoutError as exc:
            if self.deadline is None:
                raise
            self.expired = True
            raise _RequestTimeout(f"the request took longer than {self.timeout:g} s") from exc
        finally:
            self._sock.settimeout(self.timeout)  # writes keep the per-operation timeout
        if n and self.deadline is None:
            self.deadline = time.monotonic() + self.timeout
        return n


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
        timeout = self.server.config.request_timeout
        self.connection.settimeout(timeout)
        self._reader = _DeadlineReader(self.connection, timeout)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self):
        self._reader.deadline = None  # armed again by the next request's first byte
        self._reader.expired = False
        self._answered = False
        self.command, self.requestline, self.request_version = None, "", "HTTP/1.1"
        super().handle_one_request()  # catches TimeoutError itself, closing silently
        if self._reader.expired and not self._answered:
            # Cut off in its line or headers: say why before the connection closes.
            message = f"the request took longer than {self.config.request_timeout:g} s"
            self.send_error(HTTPStatus.REQUEST_TIMEOUT, message)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logger.info("%s %s", self.address_string(), format % args)

    def _send(self, status: HTTPStatus, payload: dict) -> None:
        self._answered = True
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
            self._content_length()  # bad framing is refused whatever the request
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
            message = self.repo.public(f"internal error: {exc}")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": message})

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
            size = self._content_length() or 0
        except RequestError as exc:
            self.close_connection = True
            self._send(exc.status, {"error": str(exc)})
            return False
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
        if route["metadata"]:
            self._send(HTTPStatus.OK, self.repo.metadata(name, self.repo.resolve(name, version)))
            return
        statuses = [
            {
                "version": str(entry.version),
                "state": entry.state,
                "status": {"error_code": entry.error_code, "error_message": entry.error_message},
            }
            for entry in self.repo.status(name, version)
        ]
        self._send(HTTPStatus.OK, {"model_version_status": statuses})

    def _read_body(self, size: int) -> bytes:
        """The body, within the request's deadline (:class:`_DeadlineReader`)."""
        chunks, remaining = [], size
        try:
            while remaining:
                chunk = self.rfile.read1(min(remaining, _READ_CHUNK))
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError as exc:
            self._body_read = True
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT,
                f"the request took longer than {self.config.request_timeout:g} s",
            ) from exc
        return b"".join(chunks)

    def _content_length(self) -> int | None:
        """The body's length, refusing framing that two parsers could read apart.

        Behind a proxy, two ``Content-Length`` headers, one beside a
        ``Transfer-Encoding``, or one Python's ``int`` reads but another
        parser does not (``+5``, ``5_0``, ``٥``) let a request hide a second one
        (request smuggling): all are 400.
        """
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings and lengths:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, "Content-Length with Transfer-Encoding is refused"
            )
        if codings:
            raise RequestError(
                HTTPStatus.LENGTH_REQUIRED,
                "chunked or encoded bodies are not accepted; send Content-Length",
            )
        if len(lengths) > 1:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"{len(lengths)} Content-Length headers; send one"
            )
        if not lengths:
            return None
        if not _DIGITS.fullmatch(lengths[0].strip(" \t")):
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return int(lengths[0])

    def _read_json(self):
        size = self._content_length()
        if size is None:
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
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


REFUSE_LINGER = 0.5
"""Seconds a refused connection is drained before it is closed."""


def _refuse(request) -> None:
    """Answers 503 on a connection beyond the limit and closes it without a reset."""
    try:
        request.sendall(_TOO_MANY_CONNECTIONS)
        request.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + REFUSE_LINGER
        while (left := deadline - time.monotonic()) > 0:
            request.settimeout(left)
            if not request.recv(65536):
                break
    except OSError:
        pass
    finally:
        request.close()


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
            # Closing with the client's request unread would send a TCP reset that can
            # destroy the 503 before the client reads it: linger briefly in a thread
            # (never in the accepting one) and drain what the client sent.
            threading.Thread(target=_refuse, args=(request,), daemon=True).start()
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
