"""A local server speaking TF Serving's REST and gRPC APIs, and its clients
(docs/deployment.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "Batcher": "magsr_tf.serving.batcher",
    "Busy": "magsr_tf.serving.protocol",
    "Gate": "magsr_tf.serving.gate",
    "GrpcPredictor": "magsr_tf.serving.clients",
    "LoadError": "magsr_tf.serving.repository",
    "ModelRepository": "magsr_tf.serving.repository",
    "ModelServer": "magsr_tf.serving.rest",
    "ModelServicer": "magsr_tf.serving.grpc_api",
    "PredictionServicer": "magsr_tf.serving.grpc_api",
    "RemotePredictor": "magsr_tf.serving.clients",
    "RequestError": "magsr_tf.serving.protocol",
    "Servable": "magsr_tf.serving.repository",
    "ServeConfig": "magsr_tf.serving.protocol",
    "Servers": "magsr_tf.serving.launcher",
    "ServingCore": "magsr_tf.serving.core",
    "VersionStatus": "magsr_tf.serving.repository",
    "array_to_proto": "magsr_tf.serving.grpc_api",
    "available_models": "magsr_tf.serving.launcher",
    "check_tensor": "magsr_tf.serving.protocol",
    "json_depth_exceeds": "magsr_tf.serving.protocol",
    "make_grpc_server": "magsr_tf.serving.grpc_api",
    "make_server": "magsr_tf.serving.rest",
    "parse_predict_request": "magsr_tf.serving.protocol",
    "proto_to_array": "magsr_tf.serving.grpc_api",
    "relative_paths": "magsr_tf.serving.protocol",
    "run_model": "magsr_tf.serving.repository",
    "server_text": "magsr_tf.serving.clients",
    "start_servers": "magsr_tf.serving.launcher",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
