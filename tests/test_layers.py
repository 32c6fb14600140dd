"""Custom layers: exactness against NumPy references, serialization, TFLite-safe ops."""

import numpy as np
import pytest

from magsr_tf.nn.layers import (
    AlignedBicubic,
    GaussianDownsample,
    NearestUpsample2D,
    PeriodicPad2D,
    UnitSpin,
    UpsampleConv2D,
)
from magsr_tf.ops.downsample import downsample

SEED = 7


@pytest.fixture
def maps():
    return np.random.default_rng(SEED).normal(size=(2, 32, 24, 3)).astype("float32")


def test_periodic_pad_wraps(maps):
    out = np.asarray(PeriodicPad2D(2)(maps))
    np.testing.assert_array_equal(out, np.pad(maps, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="wrap"))


@pytest.mark.parametrize("training", [True, False])  # hand-written adjoint / autodiff
@pytest.mark.parametrize("pad", [1, 2])
def test_periodic_pad_gradient_is_the_wrap_adjoint(maps, pad, training):
    import tensorflow as tf

    h, w = maps.shape[1:3]
    weights = (
        np.random.default_rng(SEED + 1)
        .normal(size=(2, h + 2 * pad, w + 2 * pad, 3))
        .astype("float32")
    )
    # d/dx sum(w * pad(x)): every padded pixel adds its weight to the pixel it copies.
    expected = np.zeros_like(maps)
    rows = (np.arange(h + 2 * pad) - pad) % h
    cols = (np.arange(w + 2 * pad) - pad) % w
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            expected[:, r, c] += weights[:, i, j]
    x = tf.constant(maps)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(PeriodicPad2D(pad)(x, training=training) * weights)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), expected, atol=1e-5)


def test_periodic_pad_tiny_lattice_falls_back(maps):
    import tensorflow as tf

    x = tf.constant(maps[:, :1, :3])  # height 1 < 2 * pad: plain autodiff
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(PeriodicPad2D(1)(x, training=True))
    # The single row is copied 3 times; columns 0 and 2 of 3 appear twice each.
    expected = np.broadcast_to(np.array([6.0, 3.0, 6.0])[None, None, :, None], x.shape)
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), expected)


def test_reflect_pad_mirrors(maps):
    out = np.asarray(PeriodicPad2D(1, "reflect")(maps))
    np.testing.assert_array_equal(
        out, np.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    )


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="Received: padding='zeros'"):
        PeriodicPad2D(1, "zeros")
    with pytest.raises(ValueError, match="Received: ratio=0"):
        GaussianDownsample(0)


@pytest.mark.parametrize("padding", ["periodic", "reflect"])
@pytest.mark.parametrize("ratio", [4, 8])
def test_gaussian_downsample_matches_data_pipeline(maps, ratio, padding):
    """Both code paths (static-size separable and dynamic depthwise) agree with NumPy to 1e-6."""
    import tensorflow as tf

    layer = GaussianDownsample(ratio, padding)
    expected = downsample(maps, ratio, padding)
    static = np.asarray(layer(maps))
    dynamic = layer.call  # trace with unknown spatial size -> depthwise path
    fn = tf.function(dynamic, input_signature=[tf.TensorSpec([None, None, None, 3])])
    np.testing.assert_allclose(static, expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(fn(maps)), expected, atol=1e-6)
    assert not layer.trainable_weights


def test_nearest_upsample(maps):
    out = np.asarray(NearestUpsample2D(2)(maps))
    np.testing.assert_array_equal(out, maps.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("padding", ["periodic", "reflect"])
def test_upsample_conv_equals_upsample_pad_conv(maps, padding):
    import keras

    fused = UpsampleConv2D(5, padding)
    y = np.asarray(fused(maps))
    conv = keras.layers.Conv2D(5, 3)
    conv.build((None, None, None, 3))
    conv.set_weights(fused.get_weights())
    ref = np.asarray(conv(PeriodicPad2D(1, padding)(NearestUpsample2D(2)(maps))))
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert y.shape == fused.compute_output_shape(maps.shape)


def test_unit_spin(maps):
    out = np.asarray(UnitSpin()(maps))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-6)
    one = np.asarray(UnitSpin()(maps[..., :1] * 3))
    assert one.min() >= -1 and one.max() <= 1


def test_unit_spin_training_gradient_matches_autodiff(maps):
    import tensorflow as tf

    x = tf.constant(maps)
    weights = np.random.default_rng(SEED + 2).normal(size=maps.shape).astype("float32")
    grads = []
    for training in (True, False):  # hand-written adjoint vs autodiff of the same map
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(UnitSpin()(x, training=training) * weights)
        grads.append(tape.gradient(loss, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)
    # Radial changes do not move a unit vector: the gradient is tangent to x.
    np.testing.assert_allclose(np.sum(grads[0] * maps, axis=-1), 0.0, atol=1e-4)


def test_unit_spin_gradient_where_the_norm_is_clamped():
    import tensorflow as tf

    # |x| = 0.5 < sqrt(epsilon) = 1: y = x (constant scale), so dy/dx = identity.
    x = tf.constant([[[[0.3, 0.4, 0.0]]]], "float32")
    weights = tf.constant([[[[1.0, 2.0, 3.0]]]], "float32")
    for training in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(UnitSpin(epsilon=1.0)(x, training=training) * weights)
        np.testing.assert_allclose(tape.gradient(loss, x).numpy(), weights.numpy(), atol=1e-6)


def test_symbolic_training_flag_takes_the_plain_path(maps):
    import tensorflow as tf

    layers = [PeriodicPad2D(1), UnitSpin(), UpsampleConv2D(4)]

    @tf.function
    def run(x, training):
        return [layer(x, training=training) for layer in layers]

    for got, layer in zip(run(maps, tf.constant(True)), layers, strict=True):
        np.testing.assert_allclose(got, layer(maps), atol=1e-6)


@pytest.mark.parametrize(
    "layer",
    [
        PeriodicPad2D(3, "reflect"),
        NearestUpsample2D(2),
        UnitSpin(1e-9),
        GaussianDownsample(8, "reflect"),
        UpsampleConv2D(4, "reflect", use_bias=False),
    ],
)
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("padding", ["periodic", "reflect"])
@pytest.mark.parametrize("ratio", [4, 8])
def test_aligned_bicubic_layer_matches_baseline(maps, ratio, padding):
    from magsr_tf.ops.interpolation import upsample

    out = np.asarray(AlignedBicubic(ratio, padding)(maps))
    np.testing.assert_allclose(out, upsample(maps, ratio, "bicubic", padding=padding), atol=1e-5)
    # On the grid, interpolation returns the LR samples themselves.
    np.testing.assert_allclose(out[:, ::ratio, ::ratio], maps, atol=1e-5)
