"""Runs a short training under a distribution strategy and prints a JSON report.

Used by test_distribute.py in a subprocess, because logical devices and
TF_CONFIG must be set before TensorFlow starts.

    python dist_worker.py mirrored OUT.json
    TF_CONFIG=... python dist_worker.py multiworker OUT.json
"""

import dataclasses
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEED = 5


def main() -> None:
    strategy_name, out = sys.argv[1], sys.argv[2]
    import tensorflow as tf

    if strategy_name == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import numpy as np

    from magsr_tf.nn.model import ModelConfig
    from magsr_tf.ops.downsample import downsample
    from magsr_tf.training.config import TrainConfig
    from magsr_tf.training.distribute import build_strategy
    from magsr_tf.training.train import train_arrays

    rng = np.random.default_rng(SEED)
    # Smooth random unit-vector textures: low-pass filtered noise, normalized.
    noise = rng.normal(size=(32, 32, 32, 3))
    k = np.fft.fftfreq(32)
    mask = (np.hypot(*np.meshgrid(k, k, indexing="ij")) < 0.12)[None, :, :, None]
    hr = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(1, 2)) * mask, axes=(1, 2)))
    hr /= np.linalg.norm(hr, axis=-1, keepdims=True)
    lr = downsample(hr.astype("float32"), 4)

    config = TrainConfig(
        model=ModelConfig(ratio=4),
        epochs=4,
        steps_per_epoch=4,
        batch_size=8,
        learning_rate=0.003,
        strategy=strategy_name,
        recalibrate_bn_batches=0,
    )
    strategy = build_strategy(strategy_name)
    result = train_arrays(lr, config)
    replicas = strategy.num_replicas_in_sync
    per_replica_equal = True
    # Mirrored variables hold one component per local replica: all must agree.
    for var in result.training_model.weights:
        values = getattr(getattr(var, "value", var), "values", None)
        if values and len(values) > 1:
            first = values[0].numpy()
            per_replica_equal &= all(np.array_equal(first, v.numpy()) for v in values[1:])
    weights = [w.numpy() if hasattr(w, "numpy") else np.asarray(w) for w in result.sr_model.weights]
    report = {
        "replicas": replicas,
        "losses": [h["loss"] for h in result.history],
        "per_replica_equal": bool(per_replica_equal),
        "weights_sum": float(sum(np.sum(np.abs(w), dtype=np.float64) for w in weights)),
        "weights_digest": [float(np.sum(w, dtype=np.float64)) for w in weights],
    }
    if strategy_name == "mirrored":
        # The same run on one device: synchronized BatchNorm and summed gradients
        # make two replicas compute what one device does with the global batch.
        single = train_arrays(lr, dataclasses.replace(config, strategy="default"))
        report["single_device_losses"] = [h["loss"] for h in single.history]
        pairs = zip(result.sr_model.get_weights(), single.sr_model.get_weights(), strict=True)
        report["max_weight_difference"] = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
