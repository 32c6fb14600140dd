"""FastBatchNormalization is keras.layers.BatchNormalization, computed faster.

Both training paths (TensorFlow's fused kernel, and the written-out synchronized
pass) are checked against the Keras layer: outputs, gradients with respect to
the input, gamma and beta, and the moving statistics. The multi-replica case is
in test_distribute.py (two logical CPUs must be configured before TF starts).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from magsr_tf.nn import batchnorm
from magsr_tf.nn.batchnorm import FastBatchNormalization

SEED = 11


def _pair(shape, **kwargs):
    """A FastBatchNormalization and a Keras BatchNormalization with equal, non-trivial weights."""
    rng = np.random.default_rng(SEED)
    layers = (FastBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs))
    channels = shape[-1]
    values = {
        "gamma": rng.uniform(0.5, 2.0, channels),
        "beta": rng.normal(size=channels),
        "moving_mean": rng.normal(size=channels),
        "moving_variance": rng.uniform(0.5, 2.0, channels),
    }
    for layer in layers:
        layer.build(shape)
        for name, value in values.items():
            if hasattr(layer, name):
                getattr(layer, name).assign(value.astype("float32"))
    return layers


def _run(layer, x, weights, training, graph=False):
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(weights * y * y)  # non-linear in y: a generic upstream gradient
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    # In a graph (the training step) TensorFlow runs a different (oneDNN) kernel.
    return [t.numpy() for t in (tf.function(step)() if graph else step())]


def _inputs(shape):
    rng = np.random.default_rng(SEED + 1)
    x = rng.normal(loc=1.5, scale=2.0, size=shape).astype("float32")
    weights = rng.uniform(size=shape).astype("float32")
    return tf.constant(x), tf.constant(weights)


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("shape", [(4, 6, 5, 7), (16, 3), (2, 3, 4, 5, 6)])
def test_training_pass_equals_keras(shape, graph):
    fast, ref = _pair(shape)
    x, weights = _inputs(shape)
    got, want = _run(fast, x, weights, True, graph), _run(ref, x, weights, True, graph)
    for g, w, name in zip(got, want, ["y", "dx", "dgamma", "dbeta"], strict=True):
        scale = np.abs(w).max()
        np.testing.assert_allclose(g, w, atol=2e-5 * scale, err_msg=name)
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(
            getattr(fast, name).numpy(), getattr(ref, name).numpy(), rtol=1e-6, err_msg=name
        )


def test_synchronized_path_equals_keras_on_one_replica():
    # The written-out backward pass (used with several replicas) on one device.
    shape = (4, 6, 5, 7)
    x, weights = _inputs(shape)
    fast, ref = _pair(shape)
    gamma, beta = fast.gamma.value, fast.beta.value
    with tf.GradientTape() as tape:
        tape.watch([x, gamma, beta])
        y, mean, variance = batchnorm._synchronized_batch_norm(x, gamma, beta, fast.epsilon)
        loss = tf.reduce_sum(weights * y * y)
    got = [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, gamma, beta])]
    want = _run(ref, x, weights, True)
    for g, w, name in zip(got, want, ["y", "dx", "dgamma", "dbeta"], strict=True):
        np.testing.assert_allclose(g, w, atol=2e-5 * np.abs(w).max(), err_msg=name)
    np.testing.assert_allclose(mean.numpy(), np.mean(x.numpy(), axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(variance.numpy(), np.var(x.numpy(), axis=(0, 1, 2)), rtol=1e-4)


def test_inference_and_frozen_layers_use_the_moving_statistics():
    shape = (4, 6, 5, 7)
    x, weights = _inputs(shape)
    fast, ref = _pair(shape)
    np.testing.assert_allclose(fast(x, training=False), ref(x, training=False), atol=1e-6)
    fast.trainable = ref.trainable = False
    before = fast.moving_mean.numpy().copy()
    np.testing.assert_allclose(fast(x, training=True), ref(x, training=True), atol=1e-6)
    np.testing.assert_array_equal(fast.moving_mean.numpy(), before)


def test_config_round_trip_and_keras_identity():
    layer = FastBatchNormalization(momentum=0.9, epsilon=1e-4, synchronized=True, name="b_bn")
    clone = FastBatchNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # recalibrate_batchnorm and other Keras tooling find it as a BatchNormalization.
    assert isinstance(layer, keras.layers.BatchNormalization)
    assert keras.saving.get_registered_name(FastBatchNormalization) == (
        "magsr_tf>FastBatchNormalization"
    )


def test_recalibration_sets_the_exact_mean_of_batch_statistics():
    from magsr_tf.training.train import recalibrate_batchnorm

    inputs = keras.Input((None, None, 4))
    outputs = FastBatchNormalization(synchronized=True, name="x_bn")(
        keras.layers.Conv2D(4, 1, name="x_conv")(inputs)
    )
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(SEED + 2)
    batches = [rng.normal(loc=k, size=(3, 5, 5, 4)).astype("float32") for k in range(3)]
    conv = model.get_layer("x_conv")
    features = [np.asarray(conv(b)) for b in batches]
    recalibrate_batchnorm(model, batches)
    bn = model.get_layer("x_bn")
    assert bn.momentum == 0.99  # restored
    np.testing.assert_allclose(
        bn.moving_mean.numpy(), np.mean([f.mean(axis=(0, 1, 2)) for f in features], 0), atol=1e-5
    )
    np.testing.assert_allclose(
        bn.moving_variance.numpy(),
        np.mean([f.var(axis=(0, 1, 2)) for f in features], 0),
        rtol=1e-4,
    )


def test_training_graph_uses_the_fused_kernel():
    # Guards against a silent fall-back to the slow Keras pass.
    shape = (4, 6, 5, 7)
    fast, _ = _pair(shape)
    spec = tf.TensorSpec(shape, tf.float32)
    ops_of = {
        training: {
            op.type
            for op in tf.function(lambda x, t=training: fast(x, training=t))
            .get_concrete_function(spec)
            .graph.get_operations()
        }
        for training in (True, False)
    }
    assert "FusedBatchNormV3" in ops_of[True]
    assert not any("FusedBatchNorm" in t for t in ops_of[False])
