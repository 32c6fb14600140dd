"""TensorFlow Serving's gRPC API beside :mod:`magsr_tf.serving.rest`
(optional: ``magsr-tf[deploy]``).

Implements, with the official ``tensorflow_serving.apis`` messages and service
definitions, so that a client written for TF Serving works unchanged:

- ``tensorflow.serving.PredictionService/Predict``: ``TensorProto`` in and out
  (``tensor_content`` bytes, or ``float_val``);
- ``tensorflow.serving.PredictionService/GetModelMetadata`` (``signature_def``);
- ``tensorflow.serving.ModelService/GetModelStatus``.

Classify, Regress, MultiInference and HandleReloadConfigRequest answer
``UNIMPLEMENTED`` (the SR models have no such signatures). The models, limits
and model slots are those of the REST server (:class:`magsr_tf.serving.core.ServingCore`);
a busy server answers ``RESOURCE_EXHAUSTED``, which clients retry.

The array/proto helpers :func:`array_to_proto` and :func:`proto_to_array` are
also the client side of ``magsr-tf predict --server grpc://HOST:PORT``.
"""

from __future__ import annotations

import logging
from concurrent import futures
from http import HTTPStatus

import numpy as np

from magsr_tf.errors import MagsrError

try:
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
except ImportError as exc:  # the core install has neither grpcio nor the TF Serving API
    raise MagsrError(
        f"gRPC serving needs grpcio and tensorflow-serving-api ({exc.name} is missing): "
        'pip install "magsr-tf[deploy]"'
    ) from exc

from magsr_tf.inference.export import SIGNATURE_KEY
from magsr_tf.serving.core import ServingCore
from magsr_tf.serving.protocol import (
    BINARY_BYTES_PER_VALUE,
    RequestError,
    ServeConfig,
    check_tensor,
)
from magsr_tf.serving.repository import ERROR_CODES

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8500
"""TF Serving's gRPC port."""
MESSAGE_MARGIN = 1 << 20
"""Room for the message around the answer's tensor bytes."""
CLIENT_MAX_MESSAGE = 256 * 1024 * 1024
"""Largest message the client of ``magsr-tf predict`` accepts (gRPC's default is 4 MB)."""
MAX_RANK = 8
"""Highest tensor rank decoded (a request is rank 4; NumPy stops at 64)."""
MAX_DIM = 2**31 - 1
"""Largest size of one dimension decoded without a ``max_values`` bound (client side)."""

_CODES = {
    HTTPStatus.BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    HTTPStatus.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    # Too large stays too large on a retry: not RESOURCE_EXHAUSTED, which means "retry".
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    HTTPStatus.SERVICE_UNAVAILABLE: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def array_to_proto(array: np.ndarray):
    """A float32 array as a ``TensorProto`` with its bytes in ``tensor_content``.

    Built directly rather than with ``tf.make_tensor_proto`` (0.38 vs 0.57 ms
    for a 1.5 MB batch here; the same message).
    """
    array = np.ascontiguousarray(array, dtype="<f4")
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in array.shape]
        ),
        tensor_content=array.tobytes(),
    )


def proto_to_array(proto, what: str = "tensor", max_values: int | None = None) -> np.ndarray:
    """A float32 ``TensorProto`` as an array; the size is checked before any allocation.

    ``tf.make_ndarray`` would fill ``[1, 100000, 100000, 3]`` from one ``float_val``
    before anything could check it, so the count is bounded first.

    Raises:
        RequestError: not DT_FLOAT, unknown or too high a rank, negative, zero or
            absurd sizes, more values than ``max_values``, or a content size that
            does not match the shape.
    """
    if proto.dtype != types_pb2.DT_FLOAT:
        name = (
            types_pb2.DataType.Name(proto.dtype)
            if proto.dtype in types_pb2.DataType.values()
            else proto.dtype
        )
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} must be DT_FLOAT. Received: {name}")
    if proto.tensor_shape.unknown_rank:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} has an unknown rank")
    shape = [d.size for d in proto.tensor_shape.dim]
    if len(shape) > MAX_RANK:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, f"{what} has rank {len(shape)}; at most {MAX_RANK} is read"
        )
    if any(s < 0 for s in shape):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} has a negative size: {shape}")
    # Each size alone, not only their product: [0, 2^40, 2^40, 3] holds no value, but
    # NumPy cannot even describe it (and a zero-size tensor is no request).
    largest = max_values if max_values is not None else MAX_DIM
    if any(s > largest for s in shape):
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if max_values else HTTPStatus.BAD_REQUEST
        raise RequestError(status, f"{what} has a size over {largest}: {shape}")
    if 0 in shape:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what} is empty: {shape}")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    if max_values is not None and count > max_values:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{what} has {count} values; the limit is {max_values} per request",
        )
    if proto.tensor_content:
        if len(proto.tensor_content) != 4 * count:
            raise RequestError(
                HTTPStatus.BAD_REQUEST,
                f"{what}: {len(proto.tensor_content)} content bytes for shape {shape}",
            )
        return np.frombuffer(proto.tensor_content, dtype="<f4").reshape(shape)
    values = proto.float_val
    if len(values) == count:
        return np.asarray(values, dtype=np.float32).reshape(shape)
    if len(values) == 1:  # TensorProto's rule: one value fills the whole tensor
        return np.full(shape, values[0], dtype=np.float32)
    raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: {len(values)} float_val for shape {shape}")


def _model_version(spec) -> int | None:
    if spec.version_label:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"version labels are not served; name a version. Received: {spec.version_label!r}",
        )
    return spec.version.value if spec.HasField("version") else None


def _abort(context, exc: Exception, core: ServingCore) -> None:
    if isinstance(exc, RequestError):
        code = _CODES.get(exc.status, grpc.StatusCode.INTERNAL)
        message = str(exc)
    else:
        logger.exception("internal error in a gRPC call")
        code = grpc.StatusCode.INTERNAL
        message = core.repo.public(f"internal error: {exc}")
    context.abort(code, message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata`` over the shared :class:`ServingCore`."""

    def __init__(self, core: ServingCore):
        self.core = core

    def Predict(self, request, context):  # noqa: N802 - the service's method name
        try:
            return self._predict(request)
        except Exception as exc:  # the server must survive anything a client sends
            _abort(context, exc, self.core)

    def _predict(self, request):
        spec = request.model_spec
        if request.model_spec.signature_name not in ("", SIGNATURE_KEY):
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"unknown signature_name {spec.signature_name!r}"
            )
        version = _model_version(spec)
        self.core.repo.resolve(spec.name, version)
        with self.core.gate.admit():
            servable = self.core.repo.servable(spec.name, version)
            if set(request.inputs) != {servable.input_name}:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"inputs must name exactly '{servable.input_name}'. "
                    f"Received: {sorted(request.inputs)}",
                )
            if any(name != servable.output_name for name in request.output_filter):
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    f"the only output is '{servable.output_name}'. "
                    f"Received: output_filter={list(request.output_filter)}",
                )
            lr = proto_to_array(
                request.inputs[servable.input_name],
                f"input '{servable.input_name}'",
                self.core.config.max_input_values,
            )
            lr = check_tensor(
                lr, f"input '{servable.input_name}'", self.core.config.max_input_values
            )
            response = predict_pb2.PredictResponse()
            with self.core.predict(servable, lr, BINARY_BYTES_PER_VALUE) as sr:
                response.outputs[servable.output_name].CopyFrom(array_to_proto(sr))
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = SIGNATURE_KEY
            return response

    def _unimplemented(self, request, context):
        # The stub's default raises NotImplementedError, logged with a traceback per call.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "only Predict is served (the SR signature)")

    Classify = Regress = MultiInference = _unimplemented  # noqa: N815

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            spec = request.model_spec
            fields = set(request.metadata_field)
            if fields != {"signature_def"}:
                raise RequestError(
                    HTTPStatus.BAD_REQUEST,
                    "metadata_field must be ['signature_def']. "
                    f"Received: {list(request.metadata_field)}",
                )
            version = self.core.repo.resolve(spec.name, _model_version(spec))
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = spec.name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(
                self.core.repo.signature_def_map(spec.name, version)
            )
            return response
        except Exception as exc:
            _abort(context, exc, self.core)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``GetModelStatus``: AVAILABLE, or END with the error of a version that cannot load."""

    def __init__(self, core: ServingCore):
        self.core = core

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            spec = request.model_spec
            response = get_model_status_pb2.GetModelStatusResponse()
            for entry in self.core.repo.status(spec.name, _model_version(spec)):
                status = response.model_version_status.add()
                status.version = entry.version
                status.state = get_model_status_pb2.ModelVersionStatus.State.Value(entry.state)
                status.status.error_code = ERROR_CODES[entry.error_code]
                status.status.error_message = entry.error_message
            return response
        except Exception as exc:
            _abort(context, exc, self.core)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the served models are the folders on disk")


def make_grpc_server(config: ServeConfig, core: ServingCore):
    """Binds (without starting) the gRPC server on ``config.grpc_port``.

    One worker thread per admitted request, and gRPC itself refuses RPCs
    beyond ``max_inflight`` with RESOURCE_EXHAUSTED; messages may be as large
    as ``max_body_bytes`` in and the largest answer out.

    Returns:
        ``(server, bound_port)``.

    Raises:
        MagsrError: the port cannot be bound.
    """
    out_bytes = 4 * config.max_output_values + MESSAGE_MARGIN
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_inflight, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=config.max_inflight,
        options=[
            ("grpc.max_receive_message_length", config.max_body_bytes),
            ("grpc.max_send_message_length", out_bytes),
            # Without this a second server could bind the same port and share its traffic.
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(core), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(core), server)
    host = f"[{config.host}]" if ":" in config.host else config.host
    try:
        port = server.add_insecure_port(f"{host}:{config.grpc_port}")
    except RuntimeError as exc:
        port, error = 0, exc
    else:
        error = None
    if not port:
        server.stop(0)
        raise MagsrError(
            f"cannot listen for gRPC on {config.host}:{config.grpc_port}"
            + (f": {error}" if error else "")
        )
    return server, port
