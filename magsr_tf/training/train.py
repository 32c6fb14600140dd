"""Unsupervised training of the SR network: loss = MSE(LR in, LR out).

The loop is a custom ``strategy.run`` loop rather than ``model.fit`` because
Keras 3 ``model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585); the same loop runs under the default strategy,
``MirroredStrategy`` (local GPUs or logical CPU devices) and
``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``.

BatchNorm (:class:`~magsr_tf.nn.batchnorm.FastBatchNormalization`) is
synchronized across replicas (``synchronized=True``): every
replica normalizes with the statistics of the global batch, so a run on N
replicas computes what one device would with the same global batch, and the
moving statistics are identical on every replica and worker. Measured in
tests/dist_worker.py (16 steps, 2 logical CPUs against one device, same global
batches): epoch losses agree to 2e-4 relative and weights to 1e-3; with
per-replica statistics the losses differ by 5e-3 after one epoch, the weights
by 4e-2, and the replicas' moving statistics drift apart.
After training the moving statistics are re-estimated exactly
(:func:`recalibrate_batchnorm`), so inference does not depend on the momentum
lag of the last steps.

Lifecycle: :func:`build_strategy`, :func:`build_dataset`, :func:`train`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np

from magsr_tf.data.pipeline import ArraySource, H5Source, batches
from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import write_json
from magsr_tf.nn.model import build_models
from magsr_tf.training.config import ProgressFn, TrainConfig, TrainResult, learning_rate
from magsr_tf.training.distribute import build_dataset, build_strategy, is_chief

log = logging.getLogger(__name__)


def recalibrate_batchnorm(training_model, lr_batches) -> None:
    """Sets every BatchNorm's moving statistics to the exact mean over ``lr_batches``.

    Runs the training graph in training mode with momentum (k-1)/k on batch k,
    which makes the moving mean/variance the plain average of the batch
    statistics; no weight other than those statistics changes.
    """
    import keras

    bns = [
        layer
        for layer in training_model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    if not bns or not lr_batches:
        return
    saved = [bn.momentum for bn in bns]
    try:
        for k, x in enumerate(lr_batches, start=1):
            for bn in bns:
                bn.momentum = (k - 1) / k
            training_model(x, training=True)
    finally:
        for bn, m in zip(bns, saved, strict=True):
            bn.momentum = m


def sr_validation(sr_model, lr: np.ndarray, hr: np.ndarray, batch: int = 32) -> dict:
    """SR validation loss MSE(HR, SR) and Corr on held-out data (never used to train)."""
    sr = np.concatenate(
        [np.asarray(sr_model(lr[i : i + batch], training=False)) for i in range(0, len(lr), batch)]
    )
    return {
        "val_sr_mse": float(np.mean((sr - hr) ** 2)),
        "val_sr_corr": float(np.mean(np.sum(sr * hr, axis=-1)))
        if hr.shape[-1] == 3
        else float("nan"),
    }


def make_train_step(
    strategy,
    training_model,
    optimizer,
    global_batch_size: int,
    physics_weight: float = 0.0,
    energy=None,
    sr_model=None,
    noise: float = 0.0,
    noise_clean_fraction: float = 0.0,
    seed: int = 0,
):
    """A compiled step ``train_step(iterator) -> loss`` for ``strategy``.

    Each replica computes MSE(LR in, LR out) on its share of the batch (plus
    ``physics_weight * energy(SR)``, the energy per spin of the SR map, when an
    energy prior is given), scaled by the global batch size; the optimizer
    all-reduces (sums) the gradients. With ``noise > 0`` the network sees the
    LR batch with noise added (:func:`noisy_batch`) and the loss compares its
    downsized SR with the clean batch.
    """
    import keras
    import tensorflow as tf

    variables = training_model.trainable_variables
    with_prior = physics_weight > 0
    if with_prior:
        if energy is None or sr_model is None:
            raise MagsrError("the energy prior needs the energy and the SR model")
        # One forward pass gives both the LR reconstruction and the SR map.
        both = keras.Model(training_model.inputs, [training_model.outputs[0], sr_model.outputs[0]])

    def replica_step(lr):
        x = lr
        if noise > 0:
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            x = noisy_batch(lr, noise, noise_clean_fraction, optimizer.iterations, replica, seed)
        with tf.GradientTape() as tape:
            if with_prior:
                out, sr = both(x, training=True)
            else:
                out = training_model(x, training=True)
            per_image = tf.reduce_mean(tf.square(out - lr), axis=[1, 2, 3])
            if with_prior:
                per_image += physics_weight * energy(sr)
            loss = tf.nn.compute_average_loss(per_image, global_batch_size=global_batch_size)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss

    @tf.function
    def train_step(it):
        per_replica = strategy.run(replica_step, args=(next(it),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def noisy_batch(lr, noise: float, clean_fraction: float, step, replica, seed: int = 0):
    """The LR batch with per-image Gaussian noise, sigma ~ U(0, noise), as a TF graph.

    A fraction ``clean_fraction`` of the images stays clean. The draws are
    stateless functions of (step, replica, seed), so a resumed run adds the same
    noise as an uninterrupted one. Vectors longer than 1 are shortened to 1
    (one component: clipped), the rule of :func:`magsr_tf.ops.noise.add_noise`.
    """
    import tensorflow as tf

    n = tf.shape(lr)[0]
    base = tf.cast(replica, tf.int64) + 7919 * int(seed)
    step = tf.cast(step, tf.int64)

    def key(i):
        return tf.stack([step, base * 3 + i])

    sigma = noise * tf.random.stateless_uniform([n, 1, 1, 1], key(0), dtype=lr.dtype)
    keep = tf.random.stateless_uniform([n, 1, 1, 1], key(1), dtype=lr.dtype) >= clean_fraction
    sigma = tf.where(keep, sigma, tf.zeros_like(sigma))
    x = lr + sigma * tf.random.stateless_normal(tf.shape(lr), key(2), dtype=lr.dtype)
    if lr.shape[-1] == 1:
        return tf.clip_by_value(x, -1.0, 1.0)
    length = tf.sqrt(tf.reduce_sum(x * x, axis=-1, keepdims=True))
    return x / tf.maximum(length, 1.0)


def load_initial_weights(sr_model, path) -> int:
    """Copies the weights of a saved SR model into ``sr_model`` by layer name.

    Returns the number of layers copied. Raises MagsrError when the file is
    missing or the architectures differ (a layer of another shape).
    """
    import keras

    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise MagsrError(f"--init-weights: no model at {path}")
    import magsr_tf.nn.layers  # noqa: F401  (registers the custom layers)

    source = keras.models.load_model(path, compile=False)
    by_name = {layer.name: layer for layer in source.layers}
    copied = 0
    for layer in sr_model.layers:
        if not layer.weights:
            continue
        other = by_name.get(layer.name)
        if other is None or [w.shape for w in other.weights] != [w.shape for w in layer.weights]:
            raise MagsrError(
                f"--init-weights: {path} has no layer {layer.name!r} of the same shape; "
                "is it a model of the same ratio and channels?"
            )
        layer.set_weights(other.get_weights())
        copied += 1
    return copied


def train(
    source,
    config: TrainConfig,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Trains the SR network on LR images only.

    Args:
        source: an :class:`~magsr_tf.data.pipeline.H5Source` or
            :class:`~magsr_tf.data.pipeline.ArraySource`.
        config: the training configuration.
        val: optional held-out ``(lr, hr)`` for the SR validation loss, reported
            every epoch and never used for training.
        progress: called with a dict after every step (``kind="step"``) and
            every epoch (``kind="epoch"``).

    Returns:
        A :class:`TrainResult`. With ``config.out_dir`` set, a checkpoint is
        written every epoch and a rerun with the same configuration resumes
        from the last one.
    """
    import keras
    import tensorflow as tf

    strategy = build_strategy(config.strategy)
    chief = is_chief(strategy)
    n_images = len(source.lr) if isinstance(source, ArraySource) else source.stop
    steps = config.steps_per_epoch or max(1, n_images // config.batch_size)
    total_steps = steps * config.epochs

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        sr_model, training_model = build_models(config.model)
        optimizer = keras.optimizers.Adam(learning_rate(config, total_steps))
        optimizer.build(training_model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        if config.init_weights is not None:
            # A checkpoint restored below takes precedence (resume of a fine-tuning run).
            load_initial_weights(sr_model, config.init_weights)

    ckpt_dir = None
    manager = None
    if config.out_dir is not None:
        out_dir = Path(config.out_dir)
        # Non-chief workers must also save (collectives), but to a private folder.
        ckpt_dir = out_dir / "checkpoints" if chief else out_dir / f"_worker_tmp_{os.getpid()}"
        ckpt = tf.train.Checkpoint(model=training_model, optimizer=optimizer, epoch=epoch_var)
        manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
        if manager.latest_checkpoint:
            ckpt.restore(manager.latest_checkpoint).expect_partial()
            log.info("resumed from %s (epoch %d)", manager.latest_checkpoint, int(epoch_var))
    first_epoch = int(epoch_var.numpy())
    history = _load_history(config.out_dir)[:first_epoch] if chief else []

    dist_ds = build_dataset(source, config, strategy, first_epoch=first_epoch)
    iterator = iter(dist_ds)

    energy = None
    if config.physics_weight > 0:
        from magsr_tf.nn.energy import SpinEnergy

        # Simulated lattices are periodic; reflect-padded (image) models get open bonds.
        boundary = "periodic" if config.model.padding == "periodic" else "open"
        energy = SpinEnergy(config.hamiltonian, boundary=boundary, dtype="float32")
    train_step = make_train_step(
        strategy,
        training_model,
        optimizer,
        config.batch_size,
        physics_weight=config.physics_weight,
        energy=energy,
        sr_model=sr_model,
        noise=config.noise,
        noise_clean_fraction=config.noise_clean_fraction,
        seed=config.seed,
    )

    writer = None
    if config.out_dir is not None and chief:
        writer = tf.summary.create_file_writer(str(Path(config.out_dir) / "tensorboard"))

    for epoch in range(first_epoch, config.epochs):
        t0 = time.perf_counter()
        losses = []
        for step in range(steps):
            loss = float(train_step(iterator))
            if not math.isfinite(loss):
                raise MagsrError(f"training diverged: loss {loss} at epoch {epoch + 1}")
            losses.append(loss)
            if progress is not None:
                progress(
                    {
                        "kind": "step",
                        "epoch": epoch + 1,
                        "epochs": config.epochs,
                        "step": step + 1,
                        "steps": steps,
                        "loss": loss,
                    }
                )
        seconds = time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "seconds": seconds,
            "images_per_s": steps * config.batch_size / seconds,
        }
        if val is not None:
            record.update(sr_validation(sr_model, *val))
        epoch_var.assign(epoch + 1)
        if manager is not None:
            manager.save(checkpoint_number=epoch + 1)
        history.append(record)
        if chief and config.out_dir is not None:
            _save_history(config.out_dir, history)
            with writer.as_default():
                for key, value in record.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value, step=epoch + 1)
                writer.flush()
        log.info("epoch %d: %s", epoch + 1, record)
        if progress is not None:
            progress({"kind": "epoch", **record, "epochs": config.epochs})

    if config.recalibrate_bn_batches:
        calib_rng = np.random.default_rng([config.seed, 99991])
        gen = batches(
            source, config.batch_size, int(calib_rng.integers(2**31)), augment_data=config.augment
        )
        calib = [next(gen) for _ in range(config.recalibrate_bn_batches)]
        if config.noise > 0:
            # The statistics of the inputs the network was trained on: the same noise mixture.
            from magsr_tf.ops.noise import add_noise

            def mixture(x):
                sigma = config.noise * calib_rng.uniform(size=len(x))
                sigma[calib_rng.uniform(size=len(x)) < config.noise_clean_fraction] = 0.0
                return add_noise(x, sigma, calib_rng)

            calib = [mixture(x) for x in calib]
        recalibrate_batchnorm(training_model, calib)
        if val is not None and history:
            history[-1] = {
                **history[-1],
                **{f"{k}_recalibrated": v for k, v in sr_validation(sr_model, *val).items()},
            }

    if ckpt_dir is not None and not chief:
        import shutil

        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return TrainResult(sr_model, training_model, history, resumed_from=first_epoch)


def train_arrays(
    lr: np.ndarray,
    config: TrainConfig,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Trains on in-memory LR images ``[n, h, w, C]`` (e.g. microscope patches)."""
    lr = np.asarray(lr, dtype=np.float32)
    if lr.ndim != 4:
        raise MagsrError(f"expected LR images shaped [n, h, w, C]. Received: shape={lr.shape}")
    if not np.isfinite(lr).all():
        raise MagsrError("the LR images contain NaN or inf")
    return train(ArraySource(lr), config, val=val, progress=progress)


def train_h5(
    path: str | Path, config: TrainConfig, stop: int, val=None, progress: ProgressFn | None = None
) -> TrainResult:
    """Trains on rows ``[0, stop)`` of ``lr/x{ratio}`` in a magsr-tf HDF5 dataset."""
    source = H5Source(str(path), config.model.ratio, stop, use_phases=config.augment)
    return train(source, config, val=val, progress=progress)


def _history_path(out_dir) -> Path:
    return Path(out_dir) / "history.json"


def _load_history(out_dir) -> list[dict]:
    if out_dir is None or not _history_path(out_dir).is_file():
        return []
    return json.loads(_history_path(out_dir).read_text())


def _save_history(out_dir, history: list[dict]) -> None:
    write_json(_history_path(out_dir), history, indent=2)
