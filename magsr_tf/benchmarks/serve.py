"""Serving throughput (``magsr-tf bench serve``): REST and gRPC under concurrent clients.

One run:

1. a ×8 SR model (untrained unless ``model`` names one: the graph, hence the
   cost, is the same) exported as a SavedModel into a temporary models root;
2. the reference: the model's own in-process inference, the SavedModel's
   ``serving_default`` called in a loop in this process (in as many threads
   as the server runs model calls at once), in SR images/s, measured right
   before each serving measurement at the same batch size;
3. ``magsr-tf serve`` (REST and gRPC) started in a subprocess, then for each
   protocol and batch size ``clients`` threads of this process each sending
   requests back to back for ``seconds`` (REST: columnar JSON over a kept-alive
   connection; gRPC: the official ``PredictionServiceStub`` with binary
   ``TensorProto``). Every client's first answer is compared with the
   in-process answer.

Rows (one per protocol and batch): requests/s, SR images/s, p50 / p99 latency,
the ratio to the in-process rate at the same batch (``x_in_process``) and,
for gRPC, to REST at the same batch (``x_rest``), plus the server's CPU time
per request (from ``/proc``) and its ratio to the CPU time of one in-process
call (``x_in_process_cpu``: 1 when serving adds no CPU work). The CPU figures
hardly move with other jobs on the machine, the wall-clock rates do: the
scheduler shares the cores per thread, so the server and its 16 clients get
more of a busy machine than the 2-thread reference loop. REST clients read
each answer whole but decode only the first one, so the REST rate is the
server's, not the client's JSON parsing.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError

log = logging.getLogger(__name__)

DEFAULT_CLIENTS = 16
DEFAULT_SECONDS = 10.0
DEFAULT_RATIO = 8
LR_SIZE = 16
"""LR maps of 16x16x3: ×8 answers of 128x128x3, the lattice of the datasets."""
BATCHES = (1, 8)
PROTOCOLS = ("rest", "grpc")
SEED = 15
MAX_CONCURRENT = 2
"""Model calls the benchmarked server runs at once (``ServeConfig.max_concurrent``), and
the threads of the in-process reference."""
MODEL_NAME = "bench"
SERVER_START_TIMEOUT = 180.0
"""Seconds for the server subprocess to import TensorFlow and bind its ports."""


def _timed_inference(fn, x, seconds: float, threads: int) -> tuple[float, float]:
    """Calls per second and CPU seconds per call of ``fn(x)`` in ``threads`` threads.

    As many threads as the server runs model calls at once: on 2 cores two
    concurrent calls measured 15-85 % faster than one after the other, and the
    reference should be the best the server could do.
    """
    fn(x)
    counts = [0] * threads
    t0, c0 = time.perf_counter(), time.process_time()

    def loop(k: int) -> None:
        while time.perf_counter() - t0 < seconds or counts[k] < 2:
            fn(x)
            counts[k] += 1

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    n = sum(counts)
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (NaN where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _ServerProcess:
    """``magsr-tf serve`` on free ports in a subprocess; stops when stdin closes."""

    def __init__(self, root: Path, clients: int, batch_maps: int = 0):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", OPENBLAS_NUM_THREADS="1")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magsr_tf.benchmarks.serve",
                str(root),
                str(clients),
                str(batch_maps),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(SERVER_START_TIMEOUT)
        if not line or not line[0]:
            self.stop()
            self._stderr.seek(0)
            tail = self._stderr.read().decode(errors="replace").strip().splitlines()[-1:]
            raise MagsrError(f"the server subprocess did not start: {' '.join(tail)}")
        addresses = json.loads(line[0])
        self.rest_url, self.grpc_target = addresses["rest"], addresses["grpc"]

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def _rest_client(url: str, batch: np.ndarray):
    """A kept-alive REST connection: ``call(decode) -> array or None``."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    body = json.dumps({"inputs": {"lr": batch.tolist()}}).encode()
    path = f"/v1/models/{MODEL_NAME}:predict"

    def call(decode: bool):
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise MagsrError(f"REST answered {resp.status}: {payload[:200]!r}")
        return np.asarray(json.loads(payload)["outputs"], np.float32) if decode else None

    return call, conn.close


def _grpc_client(target: str, batch: np.ndarray):
    """A gRPC channel and stub as a TF Serving client has them: ``call(decode)``."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from magsr_tf.serving.grpc_api import CLIENT_MAX_MESSAGE, array_to_proto, proto_to_array

    channel = grpc.insecure_channel(
        target, options=[("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE)]
    )
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "serving_default"
    request.inputs["lr"].CopyFrom(array_to_proto(batch))

    def call(decode: bool):
        answer = stub.Predict(request, timeout=600)
        return np.array(proto_to_array(answer.outputs["sr"])) if decode else None

    return call, channel.close


def run_clients(
    make_client: Callable, clients: int, seconds: float, want: np.ndarray
) -> dict[str, float]:
    """``clients`` threads sending requests back to back for ``seconds``.

    Each client checks its first answer against ``want``; a request started
    before the deadline is waited for, and the rate counts the time until the
    last one ends.

    Returns:
        ``requests``, ``requests_per_s``, ``p50_ms``, ``p99_ms``, ``errors``.
    """
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)
    start = [0.0]

    def client(k: int) -> None:
        try:
            call, close = make_client()
        except Exception as exc:  # reported below, as the run's errors
            errors.append(repr(exc))
            barrier.wait()
            return
        try:
            barrier.wait()
            first = True
            while time.perf_counter() - start[0] < seconds:
                t0 = time.perf_counter()
                try:
                    out = call(first)
                except Exception as exc:
                    errors.append(repr(exc))
                    continue
                latencies[k].append(time.perf_counter() - t0)
                if first:
                    first = False
                    if out.shape != want.shape or not np.allclose(out, want, atol=1e-4):
                        errors.append(f"client {k}: wrong answer")
        finally:
            close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    start[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start[0]
    flat = np.array([x for lat in latencies for x in lat])
    if errors:
        log.warning("%d client errors, first: %s", len(errors), errors[0])
    return {
        "requests": int(flat.size),
        "requests_per_s": flat.size / elapsed,
        "p50_ms": float(np.percentile(flat, 50) * 1e3) if flat.size else float("nan"),
        "p99_ms": float(np.percentile(flat, 99) * 1e3) if flat.size else float("nan"),
        "errors": len(errors),
    }


def _prepare_model(root: Path, ratio: int, model: str | None) -> None:
    """The served model ``root/MODEL_NAME/1``: an untrained ×``ratio`` network, or ``model``."""
    from magsr_tf.inference.export import export_saved_model, latest_saved_model, resolve_model_dir

    target = root / MODEL_NAME
    if model is None:
        from magsr_tf.nn.model import ModelConfig, build_sr_model

        export_saved_model(build_sr_model(ModelConfig(ratio=ratio)), target, version=1)
        return
    saved = latest_saved_model(resolve_model_dir(model))
    target.mkdir(parents=True)
    (target / "1").symlink_to(saved.resolve(), target_is_directory=True)


def bench_serve(
    clients: int = DEFAULT_CLIENTS,
    seconds: float = DEFAULT_SECONDS,
    batches: tuple[int, ...] = BATCHES,
    protocols: tuple[str, ...] = PROTOCOLS,
    ratio: int = DEFAULT_RATIO,
    model: str | None = None,
    batch_maps: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """Measures REST and gRPC serving against in-process inference (see the module docstring).

    Args:
        clients: concurrent clients per measurement.
        seconds: sending time per measurement (the in-process reference before
            each runs a quarter of it).
        batches: LR maps per request.
        protocols: "rest" and/or "grpc".
        ratio: up-sampling ratio of the untrained model.
        model: serve this model folder or name instead (its newest SavedModel).
        batch_maps: the server merges concurrent requests into calls of up to
            this many maps (``magsr-tf serve --batch-maps``; 0: off).
        progress: ``progress(done, total)`` after each measurement.

    Returns:
        One row per protocol and batch size.
    """
    if clients < 1 or seconds <= 0 or not batches or min(batches) < 1:
        raise MagsrError(
            f"need clients >= 1, seconds > 0 and batches >= 1. "
            f"Received: clients={clients}, seconds={seconds}, batches={batches}"
        )
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown or not protocols:
        raise MagsrError(f"protocols must be among {PROTOCOLS}. Received: {protocols}")
    if "grpc" in protocols:
        import magsr_tf.serving.grpc_api  # noqa: F401 - the install hint, before any work
    import tensorflow as tf

    from magsr_tf.inference.export import read_metadata

    total = len(protocols) * len(batches)
    done = 0
    with tempfile.TemporaryDirectory(prefix="magsr-bench-serve-") as tmp:
        root = Path(tmp)
        _prepare_model(root, ratio, model)
        loaded = tf.saved_model.load(str(root / MODEL_NAME / "1"))
        fn = loaded.signatures["serving_default"]
        channels = int(fn.structured_input_signature[1]["lr"].shape[-1] or 3)
        served_ratio = read_metadata(root / MODEL_NAME / "1").get("ratio", ratio)
        rng = np.random.default_rng(SEED)
        inputs, want = {}, {}
        for batch in batches:
            # Unit spins: the server refuses vectors longer than 1, as the CLI does.
            maps = rng.normal(size=(batch, LR_SIZE, LR_SIZE, channels))
            inputs[batch] = (maps / np.linalg.norm(maps, axis=-1, keepdims=True)).astype("f4")
            want[batch] = fn(lr=tf.constant(inputs[batch]))["sr"].numpy()

        server = _ServerProcess(root, clients, batch_maps)
        rows = []
        try:
            for protocol in protocols:
                for batch in batches:
                    x = inputs[batch]
                    if protocol == "rest":
                        make = lambda x=x: _rest_client(server.rest_url, x)  # noqa: E731
                    else:
                        make = lambda x=x: _grpc_client(server.grpc_target, x)  # noqa: E731
                    call, close = make()
                    call(False)  # loads the model and traces the batch shape
                    close()
                    # The reference right before each measurement: other jobs on the
                    # machine change its speed within a run, and ratios should not drift.
                    ref_rate, ref_cpu = _timed_inference(
                        lambda v: fn(lr=v)["sr"].numpy(),
                        tf.constant(x),
                        seconds / 4,
                        MAX_CONCURRENT,
                    )
                    ref_rate *= batch
                    log.info("in-process batch %d: %.1f SR images/s", batch, ref_rate)
                    cpu0 = server.cpu_seconds()
                    measured = run_clients(make, clients, seconds, want[batch])
                    cpu = server.cpu_seconds() - cpu0
                    images_per_s = measured["requests_per_s"] * batch
                    rows.append(
                        {
                            "protocol": protocol,
                            "batch": batch,
                            "clients": clients,
                            "lr_shape": f"{LR_SIZE}x{LR_SIZE}x{channels}",
                            "ratio": f"x{served_ratio}",
                            "server_batching": batch_maps,
                            "requests": measured["requests"],
                            "requests_per_s": measured["requests_per_s"],
                            "sr_images_per_s": images_per_s,
                            "p50_ms": measured["p50_ms"],
                            "p99_ms": measured["p99_ms"],
                            "in_process_images_per_s": ref_rate,
                            "x_in_process": images_per_s / ref_rate,
                            "server_cpu_ms_per_request": 1e3 * cpu / max(1, measured["requests"]),
                            "in_process_cpu_ms_per_call": 1e3 * ref_cpu,
                            "x_in_process_cpu": ref_cpu * max(1, measured["requests"]) / cpu,
                            "errors": measured["errors"],
                        }
                    )
                    done += 1
                    if progress is not None:
                        progress(done, total)
        finally:
            server.stop()
    rest = {r["batch"]: r["requests_per_s"] for r in rows if r["protocol"] == "rest"}
    for row in rows:
        base = rest.get(row["batch"])
        row["x_rest"] = row["requests_per_s"] / base if base else float("nan")
    return rows


def _serve_main(root: str, clients: str, batch_maps: str) -> None:
    """The server subprocess: prints its addresses as one JSON line, serves until stdin ends."""
    from magsr_tf.serving.launcher import start_servers
    from magsr_tf.serving.protocol import ServeConfig

    servers = start_servers(
        ServeConfig(
            models_root=Path(root),
            port=0,
            grpc_port=0,
            max_inflight=max(32, 2 * int(clients)),
            max_concurrent=MAX_CONCURRENT,
            batch_maps=int(batch_maps),
        )
    )
    print(json.dumps({"rest": servers.rest_url, "grpc": servers.grpc_target}), flush=True)
    try:
        sys.stdin.read()
    finally:
        servers.stop()


if __name__ == "__main__":
    _serve_main(*sys.argv[1:4])
