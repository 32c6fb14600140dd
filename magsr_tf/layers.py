"""Custom Keras layers of the SR network.

All layers use only ``keras.ops`` in ``call`` and convert to TFLite builtin ops:
periodic padding is slice + concatenate (``tf.roll`` would become a Flex op) and
up-sampling is broadcast + reshape (Keras 3 ``UpSampling2D`` breaks TFLite
legalization of the following convolution).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from magsr_tf.downsample import KERNEL_SIZE, PAD, PADDING_MODES, gaussian_kernel

_PACKAGE = "magsr_tf"


def _check_padding(padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}. Received: padding={padding!r}")


def pad2d(x, pad: int, mode: str):
    """Pad axes 1 and 2 of ``x`` by ``pad`` pixels: periodic wrap or mirror reflection."""
    if pad == 0:
        return x
    if mode == "reflect":
        return ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    x = ops.concatenate([x[:, -pad:], x, x[:, :pad]], axis=1)
    return ops.concatenate([x[:, :, -pad:], x, x[:, :, :pad]], axis=2)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PeriodicPad2D(keras.layers.Layer):
    """Pads height and width by ``pad`` pixels on each side.

    Args:
        pad: pixels added on each side.
        mode: ``"periodic"`` (wrap around: simulated lattices with periodic
            boundary conditions) or ``"reflect"`` (mirror: microscope images).
    """

    def __init__(self, pad: int = 1, mode: str = "periodic", **kwargs):
        super().__init__(**kwargs)
        if int(pad) != pad or pad < 0:
            raise ValueError(f"pad must be a non-negative integer. Received: pad={pad}")
        _check_padding(mode)
        self.pad = int(pad)
        self.mode = mode

    def call(self, inputs):
        return pad2d(inputs, self.pad, self.mode)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s + 2 * self.pad  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "mode": self.mode}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NearestUpsample2D(keras.layers.Layer):
    """Nearest-neighbour up-sampling by an integer ``factor`` (the paper's 2x2 up-sampling).

    Implemented as broadcast + reshape so that it keeps a dynamic input size and
    converts to TFLite builtins.
    """

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer. Received: factor={factor}")
        self.factor = int(factor)

    def call(self, inputs):
        f = self.factor
        s = ops.shape(inputs)
        x = ops.expand_dims(ops.expand_dims(inputs, 2), 4)
        x = ops.broadcast_to(x, (s[0], s[1], f, s[2], f, s[3]))
        return ops.reshape(x, (s[0], s[1] * f, s[2] * f, s[3]))

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s * self.factor  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UnitSpin(keras.layers.Layer):
    """Projects the network output onto physical spins.

    Three components: L2 normalization to unit vectors. One component (e.g.
    MOKE's m_z): a clip to [-1, 1].
    """

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        if inputs.shape[-1] == 1:
            return ops.clip(inputs, -1.0, 1.0)
        norm2 = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(norm2, self.epsilon))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianDownsample(keras.layers.Layer):
    """The fixed resolution-lowering layer: pad 11, depthwise 23x23 Gaussian, stride r.

    Its kernel is :func:`magsr_tf.downsample.gaussian_kernel`, the one that made
    the LR datasets, held as a non-trainable weight, so LR pixel k samples SR
    pixel k*r exactly as in :func:`magsr_tf.downsample.downsample`.

    Args:
        ratio: stride r (the super-resolution ratio).
        padding: ``"periodic"`` or ``"reflect"``.
    """

    def __init__(self, ratio: int, padding: str = "periodic", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        if int(ratio) != ratio or ratio < 1:
            raise ValueError(f"ratio must be a positive integer. Received: ratio={ratio}")
        _check_padding(padding)
        self.ratio = int(ratio)
        self.padding = padding

    def build(self, input_shape):
        channels = int(input_shape[-1])
        kernel = np.repeat(gaussian_kernel()[:, :, None, None], channels, axis=2)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(KERNEL_SIZE, KERNEL_SIZE, channels, 1),
            initializer=keras.initializers.Constant(kernel.astype("float32")),
            trainable=False,
        )

    def call(self, inputs):
        x = pad2d(inputs, PAD, self.padding)
        return ops.depthwise_conv(x, self.kernel, strides=self.ratio, padding="valid")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        shrink = lambda s: None if s is None else s // self.ratio  # noqa: E731
        return (n, shrink(h), shrink(w), c)

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "padding": self.padding}
