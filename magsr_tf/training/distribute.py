"""Distribution: the ``tf.distribute`` strategy of a run and its input pipelines.

Keras 3 ``model.fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585), so :mod:`magsr_tf.training.train` runs its own
``strategy.run`` loop over the datasets built here; one input pipeline per
worker reads a disjoint shard.
"""

from __future__ import annotations

import json
import os

from magsr_tf.data.pipeline import batches
from magsr_tf.errors import MagsrError
from magsr_tf.training.config import TrainConfig


def _tf():
    import tensorflow as tf

    return tf


def build_strategy(name: str = "auto"):
    """Returns the ``tf.distribute`` strategy for ``name`` (see :class:`TrainConfig`)."""
    tf = _tf()
    if name == "auto":
        workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker")
        if workers and len(workers) > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if "TF_CONFIG" not in os.environ:
        raise MagsrError("strategy 'multiworker' needs TF_CONFIG describing the cluster")
    return tf.distribute.MultiWorkerMirroredStrategy()


def build_dataset(source, config: TrainConfig, strategy, first_epoch: int = 0):
    """A distributed, endless dataset of LR batches for ``strategy``.

    Each input pipeline (one per worker) reads a disjoint shard of the blocks and
    yields per-replica batches.
    """
    tf = _tf()
    h, w, c = source.shape()
    if c != config.model.channels:
        raise MagsrError(
            f"the data have {c} channels but the model expects {config.model.channels}"
        )
    if config.batch_size % strategy.num_replicas_in_sync:
        raise MagsrError(
            f"batch size {config.batch_size} is not divisible by the "
            f"{strategy.num_replicas_in_sync} replicas"
        )

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(config.batch_size)
        local = per_replica * ctx.num_replicas_in_sync // ctx.num_input_pipelines

        def gen():
            yield from batches(
                source,
                local,
                config.seed,
                first_epoch=first_epoch,
                augment_data=config.augment,
                shard=ctx.input_pipeline_id,
                n_shards=ctx.num_input_pipelines,
            )

        ds = tf.data.Dataset.from_generator(
            gen, output_signature=tf.TensorSpec((local, h, w, c), tf.float32)
        )
        if ctx.num_replicas_in_sync // ctx.num_input_pipelines > 1:
            ds = ds.unbatch().batch(per_replica, drop_remainder=True)
        return without_autotune(ds.prefetch(2))

    return strategy.distribute_datasets_from_function(dataset_fn)


def without_autotune(dataset):
    """``dataset`` with tf.data autotuning off (our pipelines have nothing to tune).

    With autotuning on, freeing the iterator waits for tf.data's autotuning
    thread, which (TF 2.21) may sleep out its optimization period first: up to
    60 s. gdb showed the end of ``fit`` stalled that long in about a third of
    the runs, with the main thread in ``~RootDataset::Iterator`` and the
    autotuning thread in ``Model::OptimizeLoop``.
    """
    tf = _tf()
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def is_chief(strategy) -> bool:
    """True on the worker that writes checkpoints, logs and the exported model."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )
