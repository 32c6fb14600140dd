"""``magsr-tf bench models``: SR images per second of each shipped model.

For each model folder (``saved_models/typeI_x4`` ...) the same seeded batch of
LR images of the shipped size (128 / r pixels, unit spins) is super-resolved by

- the Keras model (``model.keras``, ``predict_on_batch``: the reference),
- the SavedModel's ``serving_default`` signature (``tf.saved_model.load``: what
  TF Serving runs),
- the TFLite file (``NAME.tflite``, LiteRT's interpreter: what an edge device runs),

in interleaved rounds, so that a neighbour's load on a shared machine hits the
three alike; each row gives images/s and the ratio of SavedModel and TFLite to
Keras measured in the same run.

``magsr-tf bench memory``: peak resident memory of `predict` on one large LR map,
measured in a fresh process (``VmHWM``), beside the size of the SR array itself
and the peak of the same command on a tiny map (TensorFlow and the model alone),
both measured in the same run.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)

BENCH_SEED = 20240612
HR_SIZE = 128
"""Lattice of the shipped datasets: an x r model gets 128/r-pixel LR images."""
DEFAULT_BATCH = 8
DEFAULT_SECONDS = 3.0
ROUNDS = 3
LITERT_HINT = "TFLite timing needs LiteRT: pip install 'magsr-tf[deploy]' (ai-edge-litert)"


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise MagsrError(LITERT_HINT) from exc
    return Interpreter


def model_folders(models_dir: Path) -> list[Path]:
    """The shipped models present in ``models_dir``; if none, every folder with a SavedModel."""
    from magsr_tf.evaluation.report import SHIPPED
    from magsr_tf.inference.export import list_served_models

    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise MagsrError(f"no models folder at {models_dir}")
    served = list_served_models(models_dir)
    names = [n for n in SHIPPED if n in served] or list(served)
    names = [n for n in names if (models_dir / n / "model.keras").is_file()]
    if not names:
        raise MagsrError(
            f"no model with model.keras and a SavedModel in {models_dir}; "
            "run `magsr-tf reproduce` or `magsr-tf fit`"
        )
    return [models_dir / n for n in names]


def _lr_batch(batch: int, size: int, channels: int) -> np.ndarray:
    x = np.random.default_rng(BENCH_SEED).normal(size=(batch, size, size, channels))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x.astype("float32")


def _rate(run, images: int, seconds: float) -> tuple[int, float]:
    """(images, seconds) of calls of ``run`` for at least ``seconds`` (and 2 calls)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= 2:
            return calls * images, elapsed


def bench_model(folder: Path, batch: int = DEFAULT_BATCH, seconds: float = DEFAULT_SECONDS) -> dict:
    """One row: images/s of Keras, SavedModel and TFLite for the model in ``folder``."""
    import tensorflow as tf

    from magsr_tf.inference.export import latest_saved_model
    from magsr_tf.nn.model import load_sr_model, model_ratio

    sr_model = load_sr_model(folder)
    ratio = model_ratio(sr_model)
    channels = int(sr_model.input_shape[-1])
    size = HR_SIZE // ratio
    x = _lr_batch(batch, size, channels)
    saved_dir = latest_saved_model(folder)
    serve = tf.saved_model.load(str(saved_dir)).signatures["serving_default"]
    x_tf = tf.constant(x)

    runners = {
        "keras": lambda: sr_model.predict_on_batch(x),
        "saved_model": lambda: serve(lr=x_tf)["sr"].numpy(),
    }
    outputs = {name: np.asarray(run()) for name, run in runners.items()}  # warm up, trace
    tflite_file = folder / f"{folder.name}.tflite"
    threads = os.cpu_count() or 1
    if tflite_file.is_file():
        interpreter = _interpreter_class()(model_path=str(tflite_file), num_threads=threads)
        (inp,) = interpreter.get_input_details()
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        out_index = interpreter.get_output_details()[0]["index"]

        def tflite_run():
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out_index)

        runners["tflite"] = tflite_run
        outputs["tflite"] = np.asarray(tflite_run())
    else:
        logger.warning("%s: no TFLite file (magsr-tf export %s --format tflite)", folder, folder)
    # The three must compute the same thing, or the speeds compare nothing.
    for name, out in outputs.items():
        diff = float(np.max(np.abs(out - outputs["keras"])))
        if out.shape != outputs["keras"].shape or diff > 1e-3:
            raise MagsrError(f"{folder}: {name} output differs from Keras (max |diff| {diff:.3g})")
    totals = {name: [0, 0.0] for name in runners}
    for _ in range(ROUNDS):
        for name, run in runners.items():
            images, elapsed = _rate(run, batch, seconds / ROUNDS)
            totals[name][0] += images
            totals[name][1] += elapsed
    rate = {name: images / elapsed for name, (images, elapsed) in totals.items()}
    return {
        "model": folder.name,
        "ratio": ratio,
        "LR size": f"{size}x{size}",
        "batch": batch,
        "Keras img/s": rate["keras"],
        "SavedModel img/s": rate["saved_model"],
        "TFLite img/s": rate.get("tflite"),
        "SavedModel / Keras": rate["saved_model"] / rate["keras"],
        "TFLite / Keras": rate["tflite"] / rate["keras"] if "tflite" in rate else None,
        "TFLite threads": threads if "tflite" in rate else None,
    }


def bench_models(
    models_dir: Path = Path("saved_models"),
    batch: int = DEFAULT_BATCH,
    seconds: float = DEFAULT_SECONDS,
    progress=None,
) -> list[dict]:
    """One row per model of ``models_dir`` (see :func:`bench_model`).

    Args:
        models_dir: the models root.
        batch: LR images per call.
        seconds: timed seconds per model and runtime (split into interleaved rounds).
        progress: called as ``progress(done, total)`` in models.
    """
    if batch < 1 or not seconds > 0:
        raise MagsrError(f"batch and seconds must be positive. Received: {batch}, {seconds}")
    folders = model_folders(models_dir)
    tflite = [f for f in folders if (f / f"{f.name}.tflite").is_file()]
    if tflite:
        _interpreter_class()  # fail before any timing if LiteRT is missing
    rows = []
    for i, folder in enumerate(folders):
        if progress is not None:
            progress(i, len(folders))
        rows.append(bench_model(folder, batch, seconds))
    if progress is not None:
        progress(len(folders), len(folders))
    return rows


MEMORY_SIZES = (1024,)
"""LR edges of ``bench memory``: 1024^2 at x8 is an 8192^2 SR (0.75 GiB of float32)."""
REFERENCE_EDGE = 8
"""LR edge of the reference run: the peak of TensorFlow and the model alone."""
_CHILD = """
import resource, sys, time
from pathlib import Path
from magsr_tf.jobs.predict import PredictConfig, predict
t0 = time.perf_counter()
predict(PredictConfig(model=sys.argv[1], inputs=(sys.argv[2],), out_dir=Path(sys.argv[3]),
                      models_root=Path(sys.argv[4]), overwrite=True))
seconds = time.perf_counter() - t0
try:
    with open("/proc/self/status") as status:
        peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) * 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak, seconds)
"""


def _peak_of_predict(model: str, lr_path: Path, out: Path, models_dir: Path) -> tuple[int, float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, model, str(lr_path), str(out), str(models_dir)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MagsrError(f"predict {lr_path.name} failed in the benchmark: {last}")
    peak, seconds = done.stdout.split()[-2:]
    return int(peak), float(seconds)


def bench_memory(
    model: str = "typeI_x8",
    models_dir: Path = Path("saved_models"),
    sizes=MEMORY_SIZES,
    progress=None,
) -> list[dict]:
    """One row per LR edge: peak RSS of `predict` vs the SR's size and a tiny map's peak.

    Args:
        model: a model name under ``models_dir`` or a model folder.
        models_dir: the models root.
        sizes: LR edges (square maps of unit spins).
        progress: called as ``progress(done, total)`` in runs.
    """
    from magsr_tf.inference.export import latest_saved_model, read_metadata, resolve_model_dir

    folder = Path(model) if Path(model).is_dir() else resolve_model_dir(model, Path(models_dir))
    meta = read_metadata(latest_saved_model(folder))
    ratio, channels = int(meta["ratio"]), int(meta.get("channels", 3))
    rows = []
    with tempfile.TemporaryDirectory(prefix="magsr-bench-memory-") as tmp:
        work = Path(tmp)
        edges = (REFERENCE_EDGE, *sizes)
        peaks = {}
        for i, edge in enumerate(edges):
            if progress is not None:
                progress(i, len(edges))
            lr_path = work / f"lr{edge}.npy"
            np.save(lr_path, _lr_batch(1, edge, channels)[0])
            peaks[edge] = _peak_of_predict(str(folder), lr_path, work / "out", Path(models_dir))
            for path in (work / "out").glob("*"):
                path.unlink()
        if progress is not None:
            progress(len(edges), len(edges))
    reference = peaks[REFERENCE_EDGE][0]
    for edge in sizes:
        peak, seconds = peaks[edge]
        sr_bytes = (edge * ratio) ** 2 * channels * 4
        rows.append(
            {
                "model": folder.name,
                "LR": f"{edge}x{edge}x{channels}",
                "SR": f"{edge * ratio}x{edge * ratio}x{channels}",
                "SR array GB": sr_bytes / 2**30,
                "peak RSS GB": peak / 2**30,
                f"tiny-map peak GB ({REFERENCE_EDGE}x{REFERENCE_EDGE})": reference / 2**30,
                "peak / SR array": peak / sr_bytes,
                "(peak - tiny) / SR array": (peak - reference) / sr_bytes,
                "seconds": seconds,
            }
        )
    return rows
