"""BatchNormalization with a fast training pass (single device) and exact synchronization.

:class:`FastBatchNormalization` is a ``keras.layers.BatchNormalization`` (same
weights, configuration, inference and moving-statistics update; it is a
subclass) whose training pass is cheaper:

* one replica (or ``synchronized=False``): TensorFlow's fused batch-norm
  kernel (``FusedBatchNormV3``, oneDNN on CPU, cuDNN on GPU) with its fused
  gradient. Keras differentiates ``ops.moments`` and ``ops.batch_normalization``
  op by op; on the 2-core CPU that made the BatchNorm layers cost about a
  quarter of the whole training step (docs/training.md);
* several replicas with ``synchronized=True``: the statistics of the *global*
  batch in both passes, from one all-reduce each way, with the backward pass
  written out (Ioffe & Szegedy, ICML 2015)::

      dx = a (dy - <dy> - x_hat <dy x_hat>),  x_hat = (x - mean) / sqrt(var + eps),

  with ``a = gamma / sqrt(var + eps)`` and ``<.>`` the mean over the global
  batch and both spatial axes. N replicas then compute what one device would
  with the same global batch, and the moving statistics stay identical on every
  replica and worker.

Both paths are the same function as the Keras layer (tests/test_batchnorm.py).
Masks, renorm, non-float32 inputs and axes other than the last fall back to the
Keras implementation.
"""

from __future__ import annotations

import keras
from keras import ops


def _replica_context():
    import tensorflow as tf

    return tf.distribute.get_replica_context()


def _replicas_in_sync() -> int:
    ctx = _replica_context()
    return 1 if ctx is None else ctx.num_replicas_in_sync


def _replica_sum(t):
    """Sum of ``t`` over the replicas of the current ``tf.distribute`` strategy.

    ``keras.ops`` has no collective; Keras' synchronized BatchNormalization uses
    ``tf.distribute`` the same way.
    """
    import tensorflow as tf

    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return t
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, t)


@keras.saving.register_keras_serializable(package="magsr_tf")
class FastBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` with a fused or synchronized training pass.

    Accepts every argument of ``keras.layers.BatchNormalization``; see the
    module docstring for what changes in training.
    """

    def call(self, inputs, training=None, mask=None):
        fast = (
            training
            and self.trainable
            and mask is None
            and not self.renorm
            and inputs.dtype == "float32"
            and self.axis in (-1, len(inputs.shape) - 1)
        )
        if not fast:
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        # Tensors, not variables, enter the custom-gradient function.
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,))
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,))
        if self.synchronized and _replicas_in_sync() > 1:
            outputs, mean, variance = _synchronized_batch_norm(inputs, gamma, beta, self.epsilon)
        else:
            outputs, mean, variance = _fused_batch_norm(inputs, gamma, beta, self.epsilon)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return outputs


def _fused_batch_norm(x, gamma, beta, epsilon: float):
    """TensorFlow's fused kernel; returns ``(y, batch mean, biased batch variance)``."""
    import tensorflow as tf

    rank = len(x.shape)
    if rank not in (4, 5):
        x4 = ops.reshape(x, (-1, 1, 1, x.shape[-1]))
    else:
        x4 = x
    y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x4,
        scale=gamma,
        offset=beta,
        mean=tf.constant([], "float32"),
        variance=tf.constant([], "float32"),
        epsilon=epsilon,
        data_format="NHWC" if rank != 5 else "NDHWC",
        is_training=True,
    )
    # The kernel reports the unbiased (Bessel-corrected) variance for the moving
    # average; Keras keeps the biased one.
    count = ops.cast(ops.size(x) // x.shape[-1], "float32")
    variance = variance * ops.maximum(count - 1.0, 0.0) / count
    return ops.reshape(y, ops.shape(x)), mean, variance


def _synchronized_batch_norm(x, gamma, beta, epsilon: float):
    """Global-batch normalization over replicas; returns ``(y, mean, variance)``."""
    axes = tuple(range(len(x.shape) - 1))
    channels = x.shape[-1]
    count = ops.cast(ops.size(x) // channels, "float32")
    total = _replica_sum(
        ops.concatenate(
            [ops.sum(x, axis=axes), ops.sum(ops.square(x), axis=axes), ops.expand_dims(count, 0)]
        )
    )
    n = total[-1]
    mean = total[:channels] / n
    variance = ops.maximum(total[channels : 2 * channels] / n - ops.square(mean), 0.0)
    inv = ops.rsqrt(variance + epsilon)

    @ops.custom_gradient
    def normalize(x, gamma, beta):
        a = gamma * inv
        y = x * a + (beta - mean * a)

        def grad(*args, upstream=None):
            dy = args[0] if upstream is None else upstream
            local = ops.concatenate([ops.sum(dy, axis=axes), ops.sum(dy * x, axis=axes)])
            sum_dy, sum_dy_x = local[:channels], local[channels:]
            # gamma and beta: this replica's share (the optimizer sums replicas).
            d_gamma = (sum_dy_x - mean * sum_dy) * inv
            d_beta = sum_dy
            # x: through the global statistics, so the global sums.
            total = _replica_sum(local)
            mean_dy, mean_dy_x = total[:channels] / n, total[channels:] / n
            c = -a * ops.square(inv) * (mean_dy_x - mean * mean_dy)
            d = -a * mean_dy - c * mean
            return x * c + (dy * a + d), d_gamma, d_beta

        return y, grad

    return normalize(x, gamma, beta), mean, variance
