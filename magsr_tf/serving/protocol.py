"""The protocol shared by REST and gRPC: configuration, limits, client errors, requests.

Everything a request is checked against before a model runs: the server's
:class:`ServeConfig`, the :class:`RequestError` (and :class:`Busy`) a client is
answered with, the bracket-depth scan that guards ``json.loads``, and the
decoding of a TF Serving predict request into a bounded LR tensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.export import SIGNATURE_KEY
from magsr_tf.io.inputs import check_lr_values

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
_NUMBER_TYPES = (int, float)
# The folders of an absolute path ("/srv/x/" of "/srv/x/y.pb"), not preceded by a name.
_ABSOLUTE_DIRS = re.compile(r"(?<![\w.~-])/(?:[^\s'\"/]+/)+")


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
        request_timeout: seconds a client may take to send a whole request
            (line, headers and body, from its first byte; 408 after), and to
            start the next one on a kept-alive connection.
        batch_maps: 0: every request is one model call. N > 1: requests of
            fewer than N maps are merged with concurrent ones of the same map
            size into calls of up to N maps
            (:class:`~magsr_tf.serving.batcher.Batcher`).
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


def relative_paths(text: str, root: Path) -> str:
    """``text`` (an exception's) without the server's paths, for a client's eyes.

    Paths under the models root become relative to it (``NAME/VERSION/...``);
    any other absolute path keeps only its last component. The log keeps the
    full text for the operator.
    """
    root = Path(root)
    prefixes = {str(root), str(root.absolute()), str(root.resolve())} - {".", "/", ""}
    for prefix in sorted(prefixes, key=len, reverse=True):
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return _ABSOLUTE_DIRS.sub("", text)


def check_tensor(array: np.ndarray, what: str, max_values: int) -> np.ndarray:
    """Checks a decoded LR tensor: rank 4, not empty, bounded, finite, unit spins at most.

    The value checks are the CLI's (:func:`magsr_tf.io.inputs.check_lr_values`):
    the server refuses what ``magsr-tf predict`` refuses.
    """
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
    try:
        return check_lr_values(array, what)
    except MagsrError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from exc


def _to_tensor(value, what: str, max_values: int) -> np.ndarray:
    # As Python objects first: float32 conversion would take true for 1.0.
    try:
        cells = np.asarray(value, dtype=object)
    except (ValueError, TypeError) as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is not a numeric tensor") from exc
    if cells.size > max_values:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{what} has {cells.size} values; the limit is {max_values} per request",
        )
    kinds = set(map(type, cells.ravel().tolist()))
    if not all(kind in _NUMBER_TYPES for kind in kinds):
        found = sorted(kind.__name__ for kind in kinds - set(_NUMBER_TYPES))
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"{what} must hold numbers only (a rectangular tensor). Received: {', '.join(found)}",
        )
    try:
        array = cells.astype(np.float32)
    except (ValueError, TypeError, OverflowError) as exc:
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
