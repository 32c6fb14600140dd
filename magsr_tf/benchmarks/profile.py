"""Where the training step's time goes (``magsr-tf bench profile``).

Runs the real training step (:func:`magsr_tf.training.train.make_train_step`, default
strategy) under the TensorFlow profiler and sums the executed ops' durations
per op type, or per layer and pass (forward / backward). Durations are summed
over TensorFlow's inter-op threads, so on a machine with several cores the
total exceeds the wall time of a step; the shares are what to read.

The raw trace stays in ``logdir`` when one is given (TensorBoard shows it with
the ``tensorboard-plugin-profile`` package).
"""

from __future__ import annotations

import collections
import logging
import re
import tempfile
from pathlib import Path

from magsr_tf.benchmarks.train import benchmark_step
from magsr_tf.errors import MagsrError
from magsr_tf.nn.model import ModelConfig

log = logging.getLogger(__name__)

GROUPS = ("op", "layer")
_LAYER = re.compile(r"train_x\d+(?:_\d+)?/([A-Za-z0-9_]+?)(?:_\d+)?/")
_ADJOINT = re.compile(r"(?:^|/)([A-Za-z_]+_adjoint)(?:_\d+)?/")


def _xplane_module():
    try:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2
    except ImportError:  # the module moved between TensorFlow releases
        try:
            from tsl.profiler.protobuf import xplane_pb2
        except ImportError as exc:
            raise MagsrError(
                "this TensorFlow build does not ship the profiler's XPlane protobuf"
            ) from exc
    return xplane_pb2


def op_durations(xplane_path: str | Path) -> list[tuple[str, float]]:
    """``(op name "scope/name:Type", seconds)`` of every op executed on a TF compute thread."""
    xplane_pb2 = _xplane_module()
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xplane_path).read_bytes())
    events = []
    for plane in space.planes:
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names[event.metadata_id].name
                # Ops are "scope/op:OpType"; executor ("ExecutorState::Process") and
                # intra-op ("ParallelFor") spans enclose them and are skipped.
                if ":" in name and "::" not in name:
                    events.append((name, event.duration_ps * 1e-12))
    return events


def _key(name: str, group: str) -> str:
    scope, op_type = name.rsplit(":", 1)
    if group == "op":
        return op_type
    scope += "/"
    if match := _LAYER.search(scope):
        direction = "backward" if scope.startswith("gradient_tape") else "forward"
        return f"{match.group(1)} ({direction})"
    # Hand-written gradients run outside the layers' scopes, in named scopes of their own.
    if match := _ADJOINT.search(scope):
        return f"{match.group(1)} (backward)"
    return "(loss and optimizer)"


def profile_training(
    ratio: int = 8,
    batch: int = 32,
    steps: int = 10,
    group: str = "op",
    logdir: str | Path | None = None,
) -> list[dict]:
    """Profiles ``steps`` training steps; rows sorted by time, largest first.

    Args:
        ratio: 4, 8 or 16 (LR images are ``128 / ratio`` pixels wide).
        batch: batch size.
        steps: profiled steps (after 3 warm-up steps).
        group: "op" (op type, e.g. ``Conv2DBackpropFilter``) or "layer"
            (layer name and pass).
        logdir: keep the profiler trace here; None uses a temporary folder.

    Returns:
        Dicts with ``name``, ``ms_per_step`` (op time summed over threads) and
        ``share`` (of the total op time).
    """
    if group not in GROUPS:
        raise MagsrError(f"group must be one of {GROUPS}. Received: group={group!r}")
    if steps < 1 or batch < 1:
        raise MagsrError(
            f"steps and batch must be positive. Received: steps={steps}, batch={batch}"
        )
    import tensorflow as tf

    run_step = benchmark_step(ModelConfig(ratio=ratio), batch)
    for _ in range(3):
        run_step()

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(logdir) if logdir is not None else Path(tmp)
        before = set(out.glob("plugins/profile/*/*.xplane.pb"))
        tf.profiler.experimental.start(str(out))
        try:
            for _ in range(steps):
                run_step()
        finally:
            tf.profiler.experimental.stop()
        traces = sorted(set(out.glob("plugins/profile/*/*.xplane.pb")) - before)
        if not traces:
            raise MagsrError(f"the profiler wrote no trace under {out}")
        events = op_durations(traces[-1])
    totals: collections.Counter[str] = collections.Counter()
    for name, seconds in events:
        totals[_key(name, group)] += seconds
    whole = sum(totals.values())
    log.info(
        "profiled %d steps at x%d: %.1f ms of op time per step", steps, ratio, whole / steps * 1e3
    )
    return [
        {"name": name, "ms_per_step": seconds / steps * 1e3, "share": seconds / whole}
        for name, seconds in totals.most_common()
    ]
