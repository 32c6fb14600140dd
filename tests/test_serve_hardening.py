"""The server and its clients against adversaries: slow clients, smuggling, hostile servers."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from conftest import call_main, unit_maps

pytest.importorskip("tensorflow")

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.inference.export import export_saved_model  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402
from magsr_tf.serving.clients import RemotePredictor, server_text  # noqa: E402
from magsr_tf.serving.launcher import start_servers  # noqa: E402
from magsr_tf.serving.protocol import ServeConfig, relative_paths  # noqa: E402
from magsr_tf.serving.rest import ModelServer  # noqa: E402

SEED = 2525
RATIO = 4
NAME = "demo_x4"
BROKEN = "broken"
HAS_GRPC = find_spec("grpc") is not None and find_spec("tensorflow_serving") is not None
needs_grpc = pytest.mark.skipif(not HAS_GRPC, reason="needs the deploy extra")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=3))
    export_saved_model(sr_model, root / NAME, version=1)
    (root / BROKEN / "1").mkdir(parents=True)
    (root / BROKEN / "1" / "saved_model.pb").write_bytes(b"\x00not a protobuf\xff" * 8)
    servers = start_servers(
        ServeConfig(
            models_root=root,
            port=0,
            grpc_port=0 if HAS_GRPC else None,
            max_input_values=3 * 32 * 32,
            max_output_values=3 * 64 * 64,
        )
    )
    yield servers, sr_model, root
    servers.stop()


def request(servers, method, path, body=None):
    host, port = servers.rest.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body).encode())
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def exchange(address, data: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def test_trickling_headers_are_cut_off_and_free_their_slots(tmp_path):
    """A header byte every 0.2 s never trips the 1 s per-read timeout; the request's does."""
    srv = ModelServer(
        ServeConfig(models_root=tmp_path, port=0, max_connections=3, request_timeout=1.0)
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    address = srv.server_address[:2]
    try:
        socks = [socket.create_connection(address, timeout=10) for _ in range(3)]
        for sock in socks:
            sock.sendall(b"GET /v1/models/x HTTP/1.1\r\nX-Slow: ")
        answers: dict[int, bytes] = {}
        t0 = time.monotonic()
        while len(answers) < len(socks) and time.monotonic() - t0 < 10:
            for k, sock in enumerate(socks):
                if k in answers:
                    continue
                try:
                    sock.sendall(b"a")
                except OSError:
                    answers[k] = b""
                    continue
                if select.select([sock], [], [], 0)[0]:
                    try:
                        answers[k] = sock.recv(65536)
                    except OSError:
                        answers[k] = b""
            time.sleep(0.2)
        assert len(answers) == len(socks), "trickling clients still connected after 10 s"
        assert all(status_line(a).startswith(b"HTTP/1.1 408 ") for a in answers.values() if a)
        for sock in socks:
            sock.close()
        for _ in range(50):  # their threads end once the server closed their connections
            answer = exchange(address, b"GET /v1/models/x HTTP/1.1\r\n\r\n")
            if b" 404 " in status_line(answer):
                break
            time.sleep(0.1)
        assert b" 404 " in status_line(answer), answer[:200]
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_the_deadline_is_per_request_on_a_kept_alive_connection(tmp_path):
    srv = ModelServer(ServeConfig(models_root=tmp_path, port=0, request_timeout=1.0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for _ in range(3):  # 1.8 s on one connection, each request well within 1 s
            conn.request("GET", "/v1/models/x")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 404
            time.sleep(0.6)
    finally:
        conn.close()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_ambiguous_content_length_is_refused(served):
    servers, _, _ = served
    address = servers.rest.server_address[:2]
    body = json.dumps({"inputs": unit_maps((1, 4, 4, 3), SEED).tolist()}).encode()
    size = str(len(body))
    head = f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\n".encode()
    good = exchange(address, head + f"Content-Length: {size}\r\n\r\n".encode() + body)
    assert status_line(good).startswith(b"HTTP/1.1 200 "), good[:200]
    framings = [
        f"Content-Length: {size}\r\nContent-Length: 7\r\n",  # smuggling behind a proxy
        f"Content-Length: 7\r\nContent-Length: {size}\r\n",
        f"Content-Length: {size}\r\nContent-Length: {size}\r\n",
        f"Content-Length: +{size}\r\n",  # Python's int() reads these, other parsers do not
        f"Content-Length: {size[:-1]}_{size[-1]}\r\n",
        f"Content-Length: {size}\r\nTransfer-Encoding: identity\r\n",
        f"Content-Length: {size}\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: ten\r\n",
    ]
    for framing in framings:
        answer = exchange(address, head + framing.encode() + b"\r\n" + body)
        assert status_line(answer).startswith(b"HTTP/1.1 400 "), (framing, answer[:200])
        assert b'"error"' in answer
    answer = exchange(
        address, b"GET /v1/models/x HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n"
    )
    assert status_line(answer).startswith(b"HTTP/1.1 400 "), answer[:200]
    again = exchange(address, head + f"Content-Length: {size}\r\n\r\n".encode() + body)
    assert status_line(again).startswith(b"HTTP/1.1 200 ")


def test_values_the_cli_refuses_are_refused(served):
    servers, sr_model, _ = served
    predict = f"/v1/models/{NAME}:predict"
    long = np.zeros((1, 2, 2, 3))
    long[0, 1, 0] = [3.0, 4.0, 0.0]  # |m| = 5
    cases = {
        "|m| = 5": long.tolist(),
        "1e30": np.full((1, 2, 2, 3), 1e30).tolist(),
        "booleans": [[[[True, False, False]] * 2] * 2],
        "a boolean among numbers": [[[[1.0, 0.0, 0.0], [0.0, True, 0.0]]]],
        "strings": [[[["1", "0", "0"]]]],
        "1e400": [[[[10**400, 0, 0]]]],
    }
    for what, inputs in cases.items():
        status, answer = request(servers, "POST", predict, {"inputs": inputs})
        assert status == 400, (what, answer)
    status, answer = request(servers, "POST", predict, {"inputs": long.tolist()})
    assert "|m| = 5" in answer["error"]
    good = unit_maps((1, 3, 3, 3), SEED)
    good[0, 0, 0] = [0, 0, 1]
    status, answer = request(servers, "POST", predict, {"inputs": good.astype(int).tolist()})
    assert status == 200, answer  # integers are numbers


def test_error_texts_carry_no_server_paths_and_status_tells_a_failed_load(served):
    servers, _, root = served
    absolute = str(Path(root).resolve())
    status, answer = request(servers, "GET", f"/v1/models/{BROKEN}")
    assert status == 200
    (entry,) = answer["model_version_status"]
    assert entry["state"] == "END", entry
    assert entry["status"]["error_code"] == "DATA_LOSS"
    message = entry["status"]["error_message"]
    assert "cannot load broken v1" in message and f"{BROKEN}/1/saved_model.pb" in message
    for method, path, body in [
        ("GET", f"/v1/models/{BROKEN}", None),
        ("GET", f"/v1/models/{BROKEN}/metadata", None),
        ("POST", f"/v1/models/{BROKEN}:predict", {"inputs": [[[[0.0, 0.0, 1.0]]]]}),
    ]:
        status, answer = request(servers, method, path, body)
        text = json.dumps(answer)
        assert absolute not in text and str(root) not in text and "/tmp" not in text, text
    status, answer = request(servers, "POST", f"/v1/models/{BROKEN}:predict", {"inputs": 0})
    assert status in (400, 500)
    status, answer = request(servers, "GET", f"/v1/models/{NAME}")
    assert answer["model_version_status"][0]["state"] == "AVAILABLE"


def test_relative_paths():
    root = Path("/srv/models")
    text = "Cannot parse b'/srv/models/m/1/saved_model.pb' (in /usr/lib/x/loader.py)"
    assert relative_paths(text, root) == "Cannot parse b'm/1/saved_model.pb' (in loader.py)"
    assert relative_paths("at /srv/models", root) == "at ."
    assert relative_paths("v1/models/x:predict", root) == "v1/models/x:predict"


class _HostilePeer:
    """A TCP server answering every connection with fixed bytes, then closing."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.payload)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


ESCAPES = "\x1b[2J\x1b]0;owned\x07\x1b[31mred\u202e\r\nsecond line"
HTTP2_SETTINGS = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x7f\xff\xff\xff\x00\x00\x00"


def _http(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    "payload",
    [
        _http("500 Internal Server Error", json.dumps({"error": ESCAPES + "x" * 5000}).encode()),
        _http("404 Not Found", ESCAPES.encode() + b"\x00\xff" * 100),
        _http("200 OK", json.dumps({"metadata": {ESCAPES: 1}}).encode()),
        _http("200 OK", b"[1, 2]"),
        HTTP2_SETTINGS,  # a gRPC port: binary, no status line
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"",
    ],
)
def test_a_hostile_or_wrong_server_gives_one_printable_line(payload):
    peer = _HostilePeer(payload)
    try:
        with pytest.raises(MagsrError) as info:
            RemotePredictor(peer.url, "m", timeout=10)
    finally:
        peer.close()
    message = str(info.value)
    assert message.isprintable(), repr(message)  # no escapes, controls or line breaks
    assert len(message) < 600, len(message)


def test_predict_cli_against_a_non_http_port_is_one_line(monkeypatch, capsys, tmp_path):
    np.save(tmp_path / "lr.npy", unit_maps((1, 4, 4, 3), SEED))
    peer = _HostilePeer(HTTP2_SETTINGS)
    try:
        code, captured = call_main(
            monkeypatch, capsys, "predict", "m", tmp_path / "lr.npy", "--server", peer.url,
            "--out", tmp_path / "out",
        )  # fmt: skip
    finally:
        peer.close()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), captured.err
    assert "did not answer HTTP" in lines[0] and "unexpected" not in lines[0]


def test_server_text():
    assert server_text("a\x1b[31mb\nc") == "a?[31mb?c"
    assert len(server_text("x" * 10_000)) == 300
    assert server_text(b"\x00\xff") == "b'\\x00\\xff'"


@needs_grpc
def test_grpc_refuses_absurd_shapes_and_values_as_invalid_argument(served):
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    from magsr_tf.serving.grpc_api import array_to_proto

    servers, _, _ = served
    channel = grpc.insecure_channel(servers.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def shaped(shape, **values):
        dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims),
            **values,
        )  # fmt: skip

    long = np.zeros((1, 2, 2, 3), np.float32)
    long[..., 0] = 5.0
    tensors = {
        "[0, 2^40, 2^40, 3]": shaped([0, 2**40, 2**40, 3]),
        "[1, 2^40, 2^40, 3] filled by one value": shaped([1, 2**40, 2**40, 3], float_val=[0.0]),
        "rank 100": shaped([1] * 100, float_val=[0.0]),
        "|m| = 5": array_to_proto(long),
    }
    try:
        for what, tensor in tensors.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = NAME
            request.inputs["lr"].CopyFrom(tensor)
            with pytest.raises(grpc.RpcError) as info:
                stub.Predict(request, timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, info.value)
        status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = BROKEN
        (entry,) = status_stub.GetModelStatus(request, timeout=30).model_version_status
        assert entry.state == get_model_status_pb2.ModelVersionStatus.END
        assert entry.status.error_code == 15  # DATA_LOSS
        assert "/tmp" not in entry.status.error_message
    finally:
        channel.close()
