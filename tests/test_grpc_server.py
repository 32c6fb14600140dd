"""TF Serving's gRPC API in `magsr-tf serve`, exercised with the official stubs."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest
from conftest import call_main, unit_maps

pytest.importorskip("tensorflow")
grpc = pytest.importorskip("grpc")
pytest.importorskip("tensorflow_serving.apis")

import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import tensor_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.inference.export import export_saved_model  # noqa: E402
from magsr_tf.jobs.predict import PredictConfig, predict  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402
from magsr_tf.serving.launcher import start_servers  # noqa: E402
from magsr_tf.serving.protocol import ServeConfig  # noqa: E402

SEED = 8500
RATIO = 4
NAME = "demo_x4"
MAX_INPUT_VALUES = 3 * 64 * 64


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=3))
    export_saved_model(sr_model, root / NAME, version=1)
    export_saved_model(sr_model, root / NAME, version=3)
    servers = start_servers(
        ServeConfig(
            models_root=root,
            port=0,
            grpc_port=0,
            max_body_bytes=2_000_000,
            max_input_values=MAX_INPUT_VALUES,
            max_output_values=3 * 128 * 128,
        )
    )
    channel = grpc.insecure_channel(servers.grpc_target)
    yield servers, sr_model, channel, root
    channel.close()
    servers.stop()


def predict_request(x=None, name=NAME, **spec):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    if x is not None:
        request.inputs["lr"].CopyFrom(tf.make_tensor_proto(x))
    return request


def test_predict_as_a_tf_serving_client_does(served):
    servers, sr_model, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    x = unit_maps((2, 6, 5, 3), SEED)
    want = sr_model(x, training=False).numpy()
    answer = stub.Predict(predict_request(x, signature_name="serving_default"), 30.0)
    assert list(answer.outputs) == ["sr"]
    assert answer.outputs["sr"].dtype == types_pb2.DT_FLOAT
    np.testing.assert_allclose(tf.make_ndarray(answer.outputs["sr"]), want, atol=1e-5)
    assert (answer.model_spec.name, answer.model_spec.version.value) == (NAME, 3)
    assert answer.model_spec.signature_name == "serving_default"
    # A named version, an output filter, and values as float_val instead of bytes.
    request = predict_request(version=1)
    request.output_filter.append("sr")
    request.inputs["lr"].CopyFrom(
        tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            tensor_shape=tf.TensorShape(x.shape).as_proto(),
            float_val=x.ravel().tolist(),
        )
    )
    answer = stub.Predict(request, 30.0)
    assert answer.model_spec.version.value == 1
    np.testing.assert_allclose(tf.make_ndarray(answer.outputs["sr"]), want, atol=1e-5)


def test_metadata_and_status(served):
    _, _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = NAME
    request.metadata_field.append("signature_def")
    answer = stub.GetModelMetadata(request, 30.0)
    assert answer.model_spec.version.value == 3
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert answer.metadata["signature_def"].Unpack(sig_map)
    sig = sig_map.signature_def["serving_default"]
    assert list(sig.inputs) == ["lr"] and list(sig.outputs) == ["sr"]
    assert sig.inputs["lr"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in sig.inputs["lr"].tensor_shape.dim] == [-1, -1, -1, 3]
    assert sig.method_name == "tensorflow/serving/predict"

    models = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = NAME
    answer = models.GetModelStatus(request, 30.0)
    assert [s.version for s in answer.model_version_status] == [3, 1]
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert all(s.state == available for s in answer.model_version_status)
    request.model_spec.version.value = 2
    with pytest.raises(grpc.RpcError) as info:
        models.GetModelStatus(request, 30.0)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def _call_code(method, request):
    try:
        method(request, 30.0)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_bad_calls_get_status_codes_and_the_server_keeps_serving(served):
    servers, sr_model, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    good = unit_maps((1, 4, 4, 3), SEED)
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND

    def with_input(proto, name="lr", **spec):
        request = predict_request(**spec)
        request.inputs[name].CopyFrom(proto)
        return request

    huge = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tf.TensorShape([1, 100_000, 100_000, 3]).as_proto(),
        float_val=[0.5],  # one value fills the tensor: 120 GB if decoded before the check
    )
    short = tf.make_tensor_proto(good)
    short.tensor_content = short.tensor_content[:-4]
    filtered = predict_request(good)
    filtered.output_filter.append("logits")
    metadata_without_field = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata_without_field.model_spec.name = NAME
    cases = [
        (stub.Predict, predict_request(good, name="unknown"), not_found),
        (stub.Predict, predict_request(good, version=2), not_found),
        (stub.Predict, predict_request(good, version_label="stable"), invalid),
        (stub.Predict, predict_request(good, signature_name="other"), invalid),
        (stub.Predict, predict_request(), invalid),  # no input
        (stub.Predict, with_input(tf.make_tensor_proto(good), name="x"), invalid),
        (stub.Predict, with_input(tf.make_tensor_proto(good.astype("float64"))), invalid),
        (stub.Predict, with_input(tf.make_tensor_proto(good[0])), invalid),  # rank 3
        (stub.Predict, with_input(tf.make_tensor_proto(good[..., :1])), invalid),  # channels
        (stub.Predict, with_input(tf.make_tensor_proto(good * np.nan)), invalid),
        (stub.Predict, with_input(tf.make_tensor_proto(np.zeros((1, 0, 4, 3), "f4"))), invalid),
        (stub.Predict, with_input(tf.make_tensor_proto(np.zeros((1, 64, 65, 3), "f4"))), invalid),
        (stub.Predict, with_input(tf.make_tensor_proto(np.zeros((1, 40, 40, 3), "f4"))), invalid),
        (stub.Predict, with_input(huge), invalid),
        (stub.Predict, with_input(short), invalid),
        (stub.Predict, filtered, invalid),
        (stub.GetModelMetadata, metadata_without_field, invalid),
        (stub.Classify, classification_pb2.ClassificationRequest(), grpc.StatusCode.UNIMPLEMENTED),
    ]
    for method, request, expected in cases:
        t0 = time.perf_counter()
        code, details = _call_code(method, request)
        assert code == expected, (request.model_spec, code, details)
        assert time.perf_counter() - t0 < 10, "rejected without computing"
    # Over the message size limit (2 MB): refused by gRPC itself.
    code, _ = _call_code(stub.Predict, predict_request(np.zeros((1, 500, 500, 3), "f4")))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    answer = stub.Predict(predict_request(good), 30.0)
    np.testing.assert_allclose(
        tf.make_ndarray(answer.outputs["sr"]), sr_model(good).numpy(), atol=1e-5
    )
    assert servers.core.gate.inflight == 0 and servers.core.gate.reserved == 0


def test_predict_cli_client_over_grpc_gives_the_local_answer(served, tmp_path):
    servers, _, _, root = served
    lr = unit_maps((2, 6, 6, 3), SEED)
    np.save(tmp_path / "lr.npy", lr)
    inputs = (str(tmp_path / "lr.npy"),)
    local = predict(
        PredictConfig(model=NAME, inputs=inputs, out_dir=tmp_path / "a", models_root=root)
    )
    server = f"grpc://{servers.grpc_target}"
    remote = predict(
        PredictConfig(model=NAME, inputs=inputs, out_dir=tmp_path / "b", server=server)
    )
    np.testing.assert_allclose(remote[0].sr, local[0].sr, atol=1e-5)
    with pytest.raises(MagsrError, match="NOT_FOUND"):
        predict(PredictConfig(model="nope", inputs=inputs, out_dir=tmp_path, server=server))
    with pytest.raises(MagsrError, match="grpc://HOST"):
        predict(PredictConfig(model=NAME, inputs=inputs, out_dir=tmp_path, server="grpc://a:b:c"))


def test_a_port_in_use_is_a_clear_error(served):
    servers, _, _, root = served
    port = int(servers.grpc_target.rsplit(":", 1)[1])
    with pytest.raises(MagsrError, match="cannot listen for gRPC"):
        start_servers(ServeConfig(models_root=root, port=0, grpc_port=port))


def test_missing_grpc_is_a_one_line_install_hint(monkeypatch):
    monkeypatch.delitem(sys.modules, "magsr_tf.serving.grpc_api", raising=False)
    monkeypatch.setitem(sys.modules, "grpc", None)  # import grpc -> ImportError
    with pytest.raises(MagsrError, match=r'pip install "magsr-tf\[deploy\]"') as info:
        import magsr_tf.serving.grpc_api  # noqa: F401
    assert "\n" not in str(info.value)


CLIENTS = 64
REQUESTS_PER_CLIENT = 4
MALFORMED_EVERY = 10  # every 10th request is malformed: 10 %


def _rest_call(url: str, body: bytes):
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        conn.request("POST", f"/v1/models/{NAME}:predict", body=body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_64_concurrent_clients_with_malformed_requests(served):
    """REST and gRPC clients at once through small limits: good answers exact, bad ones 400."""
    import json
    import threading

    _, sr_model, _, root = served
    servers = start_servers(
        ServeConfig(
            models_root=root,
            port=0,
            grpc_port=0,
            max_inflight=8,
            max_concurrent=2,
            memory_budget=1_000_000,  # ~3 REST answers of 2 maps at once
        )
    )
    malformed_rest = [
        b"[" * 50_000,
        b'{"inputs": [[[[1, 0, 0]]]',
        json.dumps({"inputs": [[[[float("nan")] * 3]]]}).encode(),
        json.dumps({"inputs": unit_maps((1, 4, 4, 1), SEED).tolist()}).encode(),
    ]
    malformed_grpc = [
        {"name": "x"},
        {"dtype": "float64"},
        {"rank": 3},
    ]
    jobs = []
    for c in range(CLIENTS):
        for i in range(REQUESTS_PER_CLIENT):
            k = c * REQUESTS_PER_CLIENT + i
            x = unit_maps((1 + k % 2, 8, 8, 3), SEED + k)
            jobs.append((c, i, k, x, k % MALFORMED_EVERY == 0))
    want = {k: sr_model(x, training=False).numpy() for _, _, k, x, bad in jobs if not bad}
    results: dict[int, tuple] = {}
    retries = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(c: int) -> None:
        channel = grpc.insecure_channel(servers.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        barrier.wait()
        for _, _, k, x, bad in (j for j in jobs if j[0] == c):
            for _attempt in range(400):
                if c % 2 == 0:  # REST
                    body = (
                        malformed_rest[k % len(malformed_rest)]
                        if bad
                        else json.dumps({"inputs": {"lr": x.tolist()}}).encode()
                    )
                    status, answer = _rest_call(servers.rest_url, body)
                    busy = status == 503
                    result = (status, np.asarray(answer.get("outputs", []), dtype="float32"))
                else:  # gRPC
                    tensor = x
                    kind = malformed_grpc[k % len(malformed_grpc)] if bad else {}
                    if kind.get("dtype"):
                        tensor = x.astype(kind["dtype"])
                    if kind.get("rank"):
                        tensor = x[0]
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = NAME
                    request.inputs[kind.get("name", "lr")].CopyFrom(tf.make_tensor_proto(tensor))
                    try:
                        answer = stub.Predict(request, 60.0)
                        result = ("OK", tf.make_ndarray(answer.outputs["sr"]))
                    except grpc.RpcError as exc:
                        result = (exc.code().name, None)
                    busy = result[0] == "RESOURCE_EXHAUSTED"
                if not busy:
                    break
                with lock:
                    retries[0] += 1
                time.sleep(0.02)
            results[k] = result
        channel.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        assert len(results) == CLIENTS * REQUESTS_PER_CLIENT
        n_bad = 0
        for _, _, k, _, bad in jobs:
            status, sr = results[k]
            if bad:
                n_bad += 1
                assert status in (400, "INVALID_ARGUMENT"), (k, status)
            else:
                assert status in (200, "OK"), (k, status)
                np.testing.assert_allclose(sr, want[k], atol=1e-5)
        assert n_bad == CLIENTS * REQUESTS_PER_CLIENT // MALFORMED_EVERY + 1
        # Still up, and every admission and reservation was given back.
        x = unit_maps((1, 8, 8, 3), SEED)
        status, answer = _rest_call(servers.rest_url, json.dumps({"inputs": x.tolist()}).encode())
        assert status == 200
        np.testing.assert_allclose(answer["outputs"], sr_model(x).numpy(), atol=1e-5)
        gate = servers.core.gate
        assert gate.inflight == 0 and gate.reserved == 0
        print(f"{retries[0]} retries after 503 / RESOURCE_EXHAUSTED; {gate.rejected} rejections")
    finally:
        servers.stop()


def test_serve_cli_without_grpc_is_a_one_line_error(served, capsys, monkeypatch):
    _, _, _, root = served
    monkeypatch.delitem(sys.modules, "magsr_tf.serving.grpc_api", raising=False)
    monkeypatch.setitem(sys.modules, "grpc", None)
    args = ["serve", "--models", str(root), "--port", "0", "--grpc-port", "0"]
    code, captured = call_main(monkeypatch, capsys, *args)
    err = captured.err.strip()
    assert code == 1
    assert err.startswith("Error: gRPC serving needs") and len(err.splitlines()) == 1
    assert 'pip install "magsr-tf[deploy]"' in err


def test_server_side_batching_gives_each_request_its_own_answer(served):
    """Concurrent gRPC requests of 1-2 maps and two map sizes through --batch-maps 8."""
    import threading

    _, sr_model, _, root = served
    servers = start_servers(
        ServeConfig(models_root=root, port=0, grpc_port=0, batch_maps=8, batch_timeout=0.05)
    )
    jobs = [unit_maps((1 + k % 2, 6 + 2 * (k % 3 == 0), 6, 3), SEED + k) for k in range(24)]
    want = [sr_model(x, training=False).numpy() for x in jobs]
    answers = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def client(k):
        with grpc.insecure_channel(servers.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            barrier.wait()
            answer = stub.Predict(predict_request(jobs[k]), 60.0)
            answers[k] = tf.make_ndarray(answer.outputs["sr"])

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        for k in range(len(jobs)):
            np.testing.assert_allclose(answers[k], want[k], atol=1e-5)
        calls = sum(b.calls for b in servers.core._batchers.values())
        assert calls < len(jobs)  # merged: 24 requests of 36 maps, at most 8 maps per call
        assert calls >= 36 // 8
    finally:
        servers.stop()
