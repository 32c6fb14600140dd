"""The local TF-Serving-compatible REST server: API shape, bad requests, survival."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest
from conftest import unit_maps

pytest.importorskip("tensorflow")

from magsr_tf.inference.export import export_saved_model  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402
from magsr_tf.serving.protocol import ServeConfig  # noqa: E402
from magsr_tf.serving.rest import make_server  # noqa: E402

SEED = 8501
RATIO = 4
NAME = "demo_x4"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=3))
    export_saved_model(sr_model, root / NAME, version=1)
    export_saved_model(sr_model, root / NAME, version=3)
    (root / "empty_model").mkdir()
    srv = make_server(
        ServeConfig(
            models_root=root,
            port=0,
            max_body_bytes=2_000_000,
            max_input_values=3 * 64 * 64,
            max_output_values=3 * 128 * 128,
            request_timeout=2.0,
        )
    )
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, sr_model, thread
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def request(srv, method, path, body=None, headers=None, raw=None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()
        return resp.status, json.loads(payload) if payload else None
    finally:
        conn.close()


def raw_exchange(srv, data: bytes) -> bytes:
    host, port = srv.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may answer (503) and close before we finish sending
            pass
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_status_and_metadata(server):
    srv, _, _ = server
    status, body = request(srv, "GET", f"/v1/models/{NAME}")
    assert status == 200
    assert [v["version"] for v in body["model_version_status"]] == ["3", "1"]
    assert all(v["state"] == "AVAILABLE" for v in body["model_version_status"])
    status, body = request(srv, "GET", f"/v1/models/{NAME}/versions/1")
    assert status == 200 and body["model_version_status"][0]["version"] == "1"
    status, body = request(srv, "GET", f"/v1/models/{NAME}/metadata")
    assert status == 200
    assert body["model_spec"] == {"name": NAME, "signature_name": "", "version": "3"}
    sig = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(sig["inputs"]) == ["lr"] and list(sig["outputs"]) == ["sr"]
    assert sig["inputs"]["lr"]["dtype"] == "DT_FLOAT"
    dims = [int(d["size"]) for d in sig["inputs"]["lr"]["tensor_shape"]["dim"]]
    assert dims == [-1, -1, -1, 3]


def test_predict_row_and_columnar_formats(server):
    srv, sr_model, _ = server
    x = unit_maps((2, 6, 5, 3), SEED)
    want = sr_model(x, training=False).numpy()
    status, body = request(
        srv, "POST", f"/v1/models/{NAME}:predict", {"inputs": {"lr": x.tolist()}}
    )
    assert status == 200
    np.testing.assert_allclose(np.asarray(body["outputs"]), want, atol=1e-5)
    status, body = request(
        srv, "POST", f"/v1/models/{NAME}/versions/1:predict", {"instances": x.tolist()}
    )
    assert status == 200 and len(body["predictions"]) == 2
    np.testing.assert_allclose(np.asarray(body["predictions"]), want, atol=1e-5)
    named = {"signature_name": "serving_default", "instances": [{"lr": m.tolist()} for m in x]}
    status, body = request(srv, "POST", f"/v1/models/{NAME}:predict", named)
    assert status == 200
    np.testing.assert_allclose(np.asarray(body["predictions"]), want, atol=1e-5)


def test_many_bad_requests_then_a_good_one(server):
    srv, sr_model, thread = server
    good = unit_maps((1, 4, 4, 3), SEED).tolist()
    predict = f"/v1/models/{NAME}:predict"
    cases = [
        ("GET", "/nothing/here", None, 404),
        ("GET", "/v1/models/unknown", None, 404),
        ("GET", "/v1/models/empty_model/metadata", None, 404),
        ("GET", f"/v1/models/{NAME}/versions/2", None, 404),
        ("GET", f"/v1/models/{NAME}/versions/99:predict", None, 405),
        ("GET", f"/v1/models/{NAME}/../../etc/passwd", None, 404),
        ("POST", f"/v1/models/{NAME}", {"inputs": good}, 405),
        ("POST", f"/v1/models/{NAME}:classify", {"inputs": good}, 400),
        ("POST", "/v1/models/unknown:predict", {"inputs": good}, 404),
        ("POST", predict, [1, 2, 3], 400),
        ("POST", predict, {}, 400),
        ("POST", predict, {"inputs": good, "instances": good}, 400),
        ("POST", predict, {"instances": []}, 400),
        ("POST", predict, {"instances": 3}, 400),
        ("POST", predict, {"inputs": "abc"}, 400),
        ("POST", predict, {"inputs": [[1, 2], [3]]}, 400),  # ragged
        ("POST", predict, {"inputs": [[[1.0, 0.0, 0.0]]]}, 400),  # rank 3
        ("POST", predict, {"inputs": unit_maps((1, 4, 4, 1), SEED).tolist()}, 400),  # channels
        ("POST", predict, {"inputs": {"x": good}}, 400),  # wrong input name
        ("POST", predict, {"instances": [{"lr": good[0], "extra": 1}]}, 400),
        ("POST", predict, {"inputs": good, "signature_name": "other"}, 400),
        ("POST", predict, {"inputs": np.zeros((1, 64, 65, 3)).tolist()}, 413),  # too many values
        ("POST", predict, {"inputs": np.zeros((1, 40, 40, 3)).tolist()}, 413),  # answer too big
        ("POST", predict, {"inputs": [[[[float("nan")] * 3]]]}, 400),
        ("PUT", predict, {"inputs": good}, 405),
        ("DELETE", f"/v1/models/{NAME}", None, 405),
    ]
    for method, path, body, expected in cases:
        status, answer = request(srv, method, path, body)
        assert status == expected, (method, path, status, answer)
        assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
    raw_cases = [
        (b"POST " + predict.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n", b" 411 "),
        (b"POST " + predict.encode() + b" HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b" 413 "),
        (b"POST " + predict.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b" 400 "),
        (b"POST " + predict.encode() + b" HTTP/1.1\r\nContent-Length: 7\r\n\r\n{nope!}", b" 400 "),
        (b"\x00\x01\x02 garbage\r\n\r\n", None),  # HTTP/0.9-style: body only
        (b"GET /v1/models/" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b" 414 "),
        # Announces 1000 bytes, sends 10 and stops: answered, not waited on forever.
        (
            b"POST " + predict.encode() + b' HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{"inputs":',
            b" 400 ",
        ),
    ]
    for data, expected in raw_cases:
        answer = raw_exchange(srv, data)
        assert b'"error"' in answer, (data[:60], answer[:200])
        if expected is not None:
            assert expected in answer.split(b"\r\n", 1)[0], (data[:60], answer[:200])
    assert thread.is_alive()
    status, body = request(srv, "POST", predict, {"inputs": good})
    assert status == 200
    np.testing.assert_allclose(
        np.asarray(body["outputs"]), sr_model(np.asarray(good, dtype="float32")).numpy(), atol=1e-5
    )


def test_keep_alive_connection_survives_an_error(server):
    srv, _, _ = server
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        for path, expected in [("/v1/models/unknown", 404), (f"/v1/models/{NAME}", 200)]:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == expected
    finally:
        conn.close()


def test_missing_models_root_is_a_clear_error(tmp_path):
    from magsr_tf import MagsrError

    with pytest.raises(MagsrError, match="does not exist"):
        make_server(ServeConfig(models_root=tmp_path / "nope", port=0))


def test_deep_json_is_refused_before_parsing(server):
    srv, _, thread = server
    predict = f"/v1/models/{NAME}:predict"
    for raw in [b"[" * 50_000, b'{"a":' * 20_000 + b"1" + b"}" * 20_000, b"[" * 17 + b"]" * 17]:
        status, answer = request(srv, "POST", predict, raw=raw)
        assert status == 400, (raw[:20], answer)
        assert "nested deeper" in answer["error"]
    assert thread.is_alive()


def test_json_depth_check():
    from magsr_tf.serving.protocol import json_depth_exceeds

    assert not json_depth_exceeds(b'{"inputs": [[[[1, 2, 3]]]]}', 5)
    assert json_depth_exceeds(b'{"inputs": [[[[1, 2, 3]]]]}', 4)
    assert not json_depth_exceeds(b"[]" * 3_000_000, 1)  # long but flat: many chunks
    assert json_depth_exceeds(b"[]" * 1_500_000 + b"[[", 1)  # the carry across chunks
    assert json_depth_exceeds(b'["[[["]', 3)  # brackets in strings count (conservative)


def test_gate_bounds_admission_slots_and_memory():
    from magsr_tf.serving.gate import Gate
    from magsr_tf.serving.protocol import Busy, RequestError

    gate = Gate(max_inflight=2, max_concurrent=1, memory_budget=100, queue_timeout=0.05)
    with gate.admit(), gate.admit():
        with pytest.raises(Busy):
            with gate.admit():
                pass
    with gate.reserve(60):
        assert gate.reserved == 60
        with pytest.raises(Busy):  # waits queue_timeout for 60 more bytes, then 503
            with gate.reserve(60):
                pass
        with gate.reserve(40):
            assert gate.reserved == 100
    with pytest.raises(RequestError) as info:  # can never fit: 413, not 503
        with gate.reserve(101):
            pass
    assert info.value.status == 413
    with gate.slot():
        with pytest.raises(Busy):
            with gate.slot():
                pass
    assert (gate.inflight, gate.reserved, gate.rejected) == (0, 0, 3)
    with gate.admit(), gate.reserve(100), gate.slot():  # all given back after the errors
        pass


def test_connections_beyond_the_limit_get_503(tmp_path):
    from magsr_tf.serving.rest import ModelServer

    srv = ModelServer(ServeConfig(models_root=tmp_path, port=0, max_connections=2))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    host, port = srv.server_address[:2]
    try:
        idle = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
        answer = raw_exchange(srv, b"GET /v1/models/x HTTP/1.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
        for sock in idle:
            sock.close()
        for _ in range(50):  # the idle connections' threads notice the close
            status, _ = request(srv, "GET", "/v1/models/x")
            if status == 404:
                break
            time.sleep(0.1)
        assert status == 404
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_expect_continue_too_large_is_refused_before_the_body(server):
    srv, _, _ = server
    head = (
        f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        "Content-Length: 5000000\r\n\r\n"
    ).encode()
    answer = raw_exchange(srv, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"100 Continue" not in answer and b"exceeds the limit" in answer


def test_a_trickling_body_times_out_as_a_whole(server):
    """One byte every 0.3 s never trips the per-read timeout; the total one (2 s) does."""
    srv, _, thread = server
    host, port = srv.server_address[:2]
    head = f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nContent-Length: 1000\r\n\r\n".encode()
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        answer = b""
        while time.monotonic() - t0 < 8 and not answer:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            sock.settimeout(0.3)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                pass
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert time.monotonic() - t0 < 6
    assert thread.is_alive()


def test_batcher_merges_concurrent_requests_into_one_call():
    from magsr_tf.serving.batcher import Batcher
    from magsr_tf.serving.gate import Gate
    from magsr_tf.serving.repository import Servable

    sizes = []

    def fn(lr):
        sizes.append(int(lr.shape[0]))
        return {"sr": lr * 2.0}

    servable = Servable("fake", 1, fn, "lr", "sr", 3, 1)
    gate = Gate(max_inflight=8, max_concurrent=1, memory_budget=10**9, queue_timeout=30)
    # One worker that waits up to 5 s for company: the 4 requests below form one call.
    batcher = Batcher(servable, gate, max_maps=4, timeout=5.0, workers=1)
    inputs = [np.full((1, 3, 3, 3), k, dtype="float32") for k in range(4)]
    answers = [None] * 4
    barrier = threading.Barrier(4)

    def client(k):
        barrier.wait()
        answers[k] = batcher.run(inputs[k])

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert time.monotonic() - t0 < 4.5, "a full call does not wait for the timeout"
    assert sizes == [4] and batcher.calls == 1
    for k in range(4):
        np.testing.assert_array_equal(answers[k], 2.0 * inputs[k])
    # A different map size is never merged: it goes in a call of its own.
    other = np.ones((1, 5, 5, 3), "float32")
    np.testing.assert_array_equal(batcher.run(other), 2.0 * other)
    assert sizes[-1] == 1
    before = threading.active_count()
    batcher.close()
    for _ in range(100):
        if threading.active_count() == before - 1:
            break
        time.sleep(0.05)
    assert threading.active_count() == before - 1  # the worker ended
