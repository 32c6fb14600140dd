"""Clients of a TF Serving endpoint: REST (``http://``) and gRPC (``grpc://``).

Both have the interface of :class:`magsr_tf.inference.predictor.LocalPredictor`
(``predictor(lr) -> sr`` plus ``channels``, ``ratio``, ``padding``,
``max_values``), so `magsr-tf predict --server` runs the same batching and
tiling against TF Serving itself or ``magsr-tf serve``.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request

import numpy as np

from magsr_tf.errors import MagsrError

REMOTE_MAX_VALUES = 1_000_000
"""Output floats per REST request (JSON is ~15 bytes per float)."""
SERVER_TEXT_CHARS = 300
"""Characters of a server's text (an error message) shown at most."""
_ERROR_BODY_BYTES = 64 * 1024


def server_text(text: object, limit: int = SERVER_TEXT_CHARS) -> str:
    """A text that came from a server, safe to print on one line of a terminal.

    A hostile or wrong server (another protocol on that port) may send escape
    sequences, control characters or binary bytes: every character that is
    not printable (controls, line breaks, bidi overrides, ...) becomes ``?``,
    and the text is cut to ``limit`` characters.
    """
    text = text if isinstance(text, str) else str(text)
    clean = "".join(ch if ch.isprintable() else "?" for ch in text[: limit + 1])
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


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
        except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
            raise MagsrError(
                f"unexpected metadata from {base}/metadata: {server_text(repr(exc))}"
            ) from exc

    def _request(self, method: str, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(_ERROR_BODY_BYTES).decode(errors="replace")
            except (OSError, http.client.HTTPException):
                detail = exc.reason
            try:
                answer = json.loads(detail)
                detail = answer.get("error", detail) if isinstance(answer, dict) else detail
            except ValueError:
                pass
            raise MagsrError(f"{url}: HTTP {exc.code}: {server_text(detail)}") from exc
        except http.client.HTTPException as exc:  # BadStatusLine, IncompleteRead, ...
            raise MagsrError(
                f"{url} did not answer HTTP (wrong port or protocol?): "
                f"{type(exc).__name__} {server_text(exc)}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MagsrError(f"cannot reach {url}: {server_text(reason)}") from exc
        try:
            answer = json.loads(payload)
        except ValueError as exc:
            raise MagsrError(f"{url} did not answer JSON") from exc
        if not isinstance(answer, dict):
            raise MagsrError(f"{url} did not answer a JSON object")
        return answer

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        answer = self._request(
            "POST",
            f"{self.base}:predict",
            {"signature_name": "serving_default", "inputs": {self.input_name: lr.tolist()}},
        )
        if "error" in answer:
            raise MagsrError(f"{self.base}: {server_text(answer['error'])}")
        outputs = answer.get("outputs")
        if isinstance(outputs, dict):
            outputs = outputs.get(self.output_name)
        if outputs is None:
            raise MagsrError(f"{self.base}: no outputs in the answer")
        try:
            return np.asarray(outputs, dtype=np.float32)
        except (ValueError, TypeError, OverflowError) as exc:
            raise MagsrError(f"{self.base} answered outputs that are not a tensor") from exc


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
        from magsr_tf.serving.grpc_api import CLIENT_MAX_MESSAGE, DEFAULT_PORT, grpc

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
            raise MagsrError(
                f"unexpected metadata from {self.target}: {server_text(repr(exc))}"
            ) from exc

    def _spec(self, spec) -> None:
        spec.name = self.model
        if self.version is not None:
            spec.version.value = self.version

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code()
            name = code.name if code is not None else "UNKNOWN"
            raise MagsrError(f"grpc://{self.target}: {name}: {server_text(exc.details())}") from exc

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        from tensorflow_serving.apis import predict_pb2

        from magsr_tf.serving.grpc_api import array_to_proto, proto_to_array
        from magsr_tf.serving.protocol import RequestError

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
            raise MagsrError(
                f"grpc://{self.target} answered a bad tensor: {server_text(exc)}"
            ) from exc
