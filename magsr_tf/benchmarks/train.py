"""Training throughput benchmark (``magsr-tf bench train``).

Prints LR images/s of the real training step (the one :func:`magsr_tf.training.train.train`
runs) for x4, x8 and x16, next to two references measured in the same run:

* the machine's convolution rate: one 3x3 64->64 convolution (forward) on the
  expander's feature maps, in GFLOP/s; the training step's achieved FLOP/s
  (forward + backward convolution FLOPs, counted analytically) is reported as a
  fraction of it;
* a straightforward build of the paper's graph from stock Keras layers
  (:func:`build_reference_training_model`: ``BatchNormalization``,
  ``UpSampling2D``, a 23x23 ``DepthwiseConv2D`` for the downsizing, periodic
  padding by slice + concatenate, everything differentiated by autodiff), as a
  speed-up ratio.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from magsr_tf.nn.model import ModelConfig, build_models

log = logging.getLogger(__name__)

LATTICE = 128
DEFAULT_BATCH = 32


def conv_flops_per_image(sr_model, lr_size: int) -> float:
    """Forward FLOPs (2 x MACs) of every 3x3 convolution of the SR model for one LR image."""
    from magsr_tf.nn.layers import UpsampleConv2D

    size = lr_size
    flops = 0.0
    for layer in sr_model.layers:
        kind = type(layer).__name__
        if kind == "NearestUpsample2D":
            size *= 2
        elif kind in ("Conv2D", "UpsampleConv2D"):
            kernel = layer.kernel.shape
            if isinstance(layer, UpsampleConv2D):
                size *= 2
            flops += 2.0 * size * size * kernel[0] * kernel[1] * kernel[2] * kernel[3]
    return flops


def _timed(fn, seconds: float) -> float:
    """Calls ``fn`` repeatedly for about ``seconds``; returns calls per second."""
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 3:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def measure_conv_rate(seconds: float, batch: int = DEFAULT_BATCH) -> float:
    """GFLOP/s of a 3x3 64->64 convolution on [batch, 16, 16, 64] (the x8 expander)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, 18, 18, 64)).astype("float32"))
    k = tf.constant(rng.normal(size=(3, 3, 64, 64)).astype("float32"))
    conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "VALID"))
    rate = _timed(lambda: conv().numpy(), seconds)
    return rate * 2.0 * batch * 16 * 16 * 9 * 64 * 64 / 1e9


def build_reference_training_model(ratio: int, channels: int = 3):
    """The paper's training graph (LR -> LR) as a straightforward Keras build.

    Stock layers only, in the paper's order: 4 x (periodic pad, Conv2D 64,
    BatchNormalization, LeakyReLU), log2(r) x (pad, Conv2D, BatchNormalization,
    LeakyReLU, UpSampling2D), pad, Conv2D, unit-spin normalization, then the
    Gaussian downsizing as a fixed 23x23 depthwise convolution of stride r.
    The speed reference of ``bench train``; not for use (``UpSampling2D`` does
    not convert to TFLite, and the ``Lambda`` layers do not serialize).
    """
    import keras
    from keras import ops

    from magsr_tf.nn.layers import periodic_pad
    from magsr_tf.nn.model import EXPANDER_FILTERS, EXPANDER_LAYERS, UPSAMPLING_FILTERS
    from magsr_tf.ops.kernels import KERNEL_SIZE, PAD, gaussian_kernel

    def pad(by):
        return keras.layers.Lambda(lambda t: periodic_pad(t, by))

    def block(x, filters):
        x = keras.layers.Conv2D(filters, 3, use_bias=False)(pad(1)(x))
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.LeakyReLU(negative_slope=0.2)(x)

    inputs = keras.Input((None, None, channels))
    x = inputs
    for _ in range(EXPANDER_LAYERS):
        x = block(x, EXPANDER_FILTERS)
    for filters in UPSAMPLING_FILTERS[ratio]:
        x = keras.layers.UpSampling2D(2)(block(x, filters))
    x = keras.layers.Conv2D(channels, 3)(pad(1)(x))
    x = keras.layers.Lambda(lambda t: t / ops.sqrt(ops.sum(t * t, axis=-1, keepdims=True)))(x)
    kernel = np.repeat(gaussian_kernel()[:, :, None, None], channels, axis=2)
    down = keras.layers.DepthwiseConv2D(
        KERNEL_SIZE,
        strides=ratio,
        use_bias=False,
        depthwise_initializer=keras.initializers.Constant(kernel.astype("float32")),
        trainable=False,
    )
    return keras.Model(inputs, down(pad(PAD)(x)))


def benchmark_step(config: ModelConfig, batch: int, reference: bool = False):
    """The real training step over one fixed random LR batch, as ``run() -> loss``.

    Shared by ``bench train`` and ``bench profile``. ``reference`` trains
    :func:`build_reference_training_model` instead of our graph.
    """
    import keras
    import tensorflow as tf

    from magsr_tf.training.distribute import without_autotune
    from magsr_tf.training.train import make_train_step

    if reference:
        training_model = build_reference_training_model(config.ratio, config.channels)
    else:
        _, training_model = build_models(config)
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(training_model.trainable_variables)
    h = LATTICE // config.ratio
    data = np.random.default_rng(1).normal(size=(batch, h, h, config.channels)).astype("float32")
    iterator = iter(without_autotune(tf.data.Dataset.from_tensors(data).repeat()))
    step = make_train_step(tf.distribute.get_strategy(), training_model, optimizer, batch)
    return lambda: float(step(iterator))


def measure_training(
    config: ModelConfig, batch: int, seconds: float, reference: bool = False
) -> float:
    """LR images/s of the training step (of the stock-Keras reference with ``reference``)."""
    return _timed(benchmark_step(config, batch, reference), seconds) * batch


def bench_train(seconds: float = 20.0, batch_size: int | None = None) -> list[dict]:
    """Rows: ratio, images/s (ours, stock-Keras reference), speed-up, fraction of conv FLOP/s."""
    batch = batch_size or DEFAULT_BATCH
    conv_rate = measure_conv_rate(min(seconds, 5.0), batch)
    log.info("conv rate %.1f GFLOP/s", conv_rate)
    rows = []
    for ratio in (4, 8, 16):
        ours = ModelConfig(ratio=ratio)
        ips = measure_training(ours, batch, seconds)
        ref = measure_training(ours, batch, seconds / 2, reference=True)
        sr_model, _ = build_models(ours)
        # Backward costs about twice the forward (input and weight gradients).
        train_flops = 3.0 * conv_flops_per_image(sr_model, LATTICE // ratio)
        rows.append(
            {
                "ratio": f"x{ratio}",
                "batch": batch,
                "images_per_s": ips,
                "reference_images_per_s": ref,
                "speedup": ips / ref,
                "train_gflops": ips * train_flops / 1e9,
                "conv_gflops": conv_rate,
                "fraction_of_conv_rate": ips * train_flops / 1e9 / conv_rate,
            }
        )
    return rows
