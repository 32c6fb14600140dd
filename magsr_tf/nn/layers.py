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

from magsr_tf.ops.downsample import downsample_matrix
from magsr_tf.ops.interpolation import kernel
from magsr_tf.ops.kernels import PAD, PADDING_MODES, gaussian_kernel

_PACKAGE = "magsr_tf"


def _check_positive_int(name: str, value) -> int:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value}")
    return int(value)


def _spatial_shape(input_shape, size_fn, channels=None):
    """``input_shape`` with height and width mapped by ``size_fn`` (None stays None)."""
    n, h, w, c = input_shape
    new = lambda s: None if s is None else size_fn(s)  # noqa: E731
    return (n, new(h), new(w), c if channels is None else channels)


def _is_training(training) -> bool:
    """True only for a Python (or NumPy) True: the hand-written adjoints are chosen
    while tracing, so a symbolic ``training`` tensor takes the plain autodiff path."""
    return isinstance(training, (bool, np.bool_)) and bool(training)


def _check_padding(padding: str) -> None:
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}. Received: padding={padding!r}")


def pad2d(x, pad: int, mode: str, training: bool = False):
    """Pad axes 1 and 2 of ``x`` by ``pad`` pixels.

    Modes: "periodic" (wrap around), "reflect" (mirror about the edge pixel)
    and "symmetric" (mirror including the edge pixel; used internally by
    :class:`UpsampleConv2D`, since reflecting an up-sampled image equals
    symmetric padding of the image before up-sampling).

    With ``training`` (and a static size of at least ``2 pad``), periodic
    padding carries its hand-written gradient; inference graphs keep plain
    slice + concatenate.
    """
    if pad == 0:
        return x
    if mode in ("reflect", "symmetric"):
        return ops.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode=mode)
    h, w = x.shape[1], x.shape[2]
    if training and h is not None and w is not None and min(h, w) >= 2 * pad:
        return _periodic_pad_folded_grad(x, pad)
    return periodic_pad(x, pad)


def periodic_pad(x, pad: int):
    """Wraps ``pad`` pixels of the opposite edges around ``[n, h, w, C]`` (slice + concatenate:
    TFLite has no builtin ``tf.roll``); plain autodiff."""
    x = ops.concatenate([x[:, -pad:], x, x[:, :pad]], axis=1)
    return ops.concatenate([x[:, :, -pad:], x, x[:, :, :pad]], axis=2)


def _fold(g, pad: int, axis: int, n: int):
    """Adjoint of periodic padding along ``axis`` (``n`` pixels before padding)."""

    def part(start, stop):
        return g[:, start:stop] if axis == 1 else g[:, :, start:stop]

    head = part(pad, 2 * pad) + part(n + pad, n + 2 * pad)
    tail = part(n, n + pad) + part(0, pad)
    return ops.concatenate([head, part(2 * pad, n), tail], axis=axis)


def _periodic_pad_folded_grad(x, pad: int):
    # Same values as periodic_pad, but with the adjoint written out: autodiff of
    # slice + concatenate builds one zero-padded full-size tensor per slice and
    # sums them, which cost more than the convolutions' own backward pass on CPU.
    h, w = x.shape[1], x.shape[2]

    @ops.custom_gradient
    def padded(x):
        def grad(*args, upstream=None):
            g = args[0] if upstream is None else upstream
            with keras.name_scope("periodic_pad_adjoint"):  # named in profiles
                return _fold(_fold(g, pad, 2, w), pad, 1, h)

        return periodic_pad(x, pad), grad

    return padded(x)


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

    def call(self, inputs, training=None):
        return pad2d(inputs, self.pad, self.mode, training=_is_training(training))

    def compute_output_shape(self, input_shape):
        return _spatial_shape(input_shape, lambda s: s + 2 * self.pad)

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
        self.factor = _check_positive_int("factor", factor)

    def call(self, inputs):
        f = self.factor
        s = ops.shape(inputs)
        x = ops.expand_dims(ops.expand_dims(inputs, 2), 4)
        x = ops.broadcast_to(x, (s[0], s[1], f, s[2], f, s[3]))
        return ops.reshape(x, (s[0], s[1] * f, s[2] * f, s[3]))

    def compute_output_shape(self, input_shape):
        return _spatial_shape(input_shape, lambda s: s * self.factor)

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

    def call(self, inputs, training=None):
        if inputs.shape[-1] == 1:
            return ops.clip(inputs, -1.0, 1.0)
        norm2 = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        inv_norm = ops.rsqrt(ops.maximum(norm2, self.epsilon))
        if not _is_training(training):
            return inputs * inv_norm

        # Training: the adjoint written out, dx = (g - y <g, y>) / |x|, which
        # takes half the passes over the high-resolution map that autodiff does.
        # Where |x|^2 < epsilon the scale is a constant and the radial term drops.
        unclamped = ops.cast(norm2 > self.epsilon, inputs.dtype)

        @ops.custom_gradient
        def normalize(x):
            y = x * inv_norm

            def grad(*args, upstream=None):
                g = args[0] if upstream is None else upstream
                with keras.name_scope("unit_spin_adjoint"):
                    radial = ops.sum(g * y, axis=-1, keepdims=True) * unclamped
                    return (g - y * radial) * inv_norm

            return y, grad

        return normalize(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


class _FixedResampling(keras.layers.Layer):
    """A fixed (non-trainable) change of resolution by ``ratio`` with a padding mode."""

    def __init__(self, ratio: int, padding: str = "periodic", **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        _check_padding(padding)
        self.ratio = _check_positive_int("ratio", ratio)
        self.padding = padding

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio, "padding": self.padding}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class GaussianDownsample(_FixedResampling):
    """The fixed resolution-lowering layer: pad 11, depthwise 23x23 Gaussian, stride r.

    Its kernel is :func:`magsr_tf.ops.kernels.gaussian_kernel`, the one that made
    the LR datasets, held as a non-trainable weight, so LR pixel k samples SR
    pixel k*r exactly as in :func:`magsr_tf.ops.downsample.downsample`.

    Args:
        ratio: stride r (the super-resolution ratio).
        padding: ``"periodic"`` or ``"reflect"``.
        degradation: another blur, a spec (``"gaussian:SIGMA"``, ``"box"``,
            ``"psf:FILE.npy"``) or :meth:`~magsr_tf.ops.degradation.Degradation.to_config`
            dict; None (or the sigma = 1 Gaussian) is the paper's operator and
            leaves the layer exactly as before (same config, same weights).
    """

    def __init__(self, ratio: int, padding: str = "periodic", degradation=None, **kwargs):
        super().__init__(ratio, padding, **kwargs)
        from magsr_tf.ops.degradation import parse_degradation

        parsed = parse_degradation(degradation)
        self.degradation = None if parsed.is_default else parsed

    def get_config(self):
        config = super().get_config()
        if self.degradation is not None:
            # Saved models keep their blur (a PSF with its taps); the default
            # adds no key, so configs of older models are unchanged.
            config["degradation"] = self.degradation.to_config()
        return config

    def build(self, input_shape):
        channels = int(input_shape[-1])
        deg = self.degradation
        taps = gaussian_kernel() if deg is None else deg.kernel(self.ratio)
        kernel = np.repeat(taps[:, :, None, None], channels, axis=2)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(taps.shape[0], taps.shape[1], channels, 1),
            initializer=keras.initializers.Constant(kernel.astype("float32")),
            trainable=False,
        )

    def call(self, inputs):
        h, w = inputs.shape[1], inputs.shape[2]
        separable = self.degradation is None or self.degradation.separable
        if separable and h is not None and w is not None and inputs.shape[-1] is not None:
            # Static size (training): the separable form LR = Wy X Wx^T with the
            # padding folded into Wy, Wx equals the padded depthwise convolution
            # (the Gaussian is separable) and trains about 3x faster on CPU.
            deg = self.degradation
            wy = downsample_matrix(h, self.ratio, self.padding, deg)
            wx = downsample_matrix(w, self.ratio, self.padding, deg)
            wy, wx = ops.convert_to_tensor(wy, "float32"), ops.convert_to_tensor(wx, "float32")
            return ops.einsum("ki,nijc,lj->nklc", wy, inputs, wx)
        pad = PAD if self.degradation is None else self.kernel.shape[0] // 2
        x = pad2d(inputs, pad, self.padding)
        return ops.depthwise_conv(x, self.kernel, strides=self.ratio, padding="valid")

    def compute_output_shape(self, input_shape):
        return _spatial_shape(input_shape, lambda s: s // self.ratio)


def _subpixel_taps() -> np.ndarray:
    """``M[a, o + 1, d + 1] = 1`` when HR tap d of output phase a reads LR offset o.

    After 2x nearest up-sampling, HR row 2i + a + d comes from LR row
    i + floor((a + d) / 2), so a 3x3 kernel on the up-sampled map is, for each
    of the four output phases (a, b), a 3x3 kernel on the LR map.
    """
    taps = np.zeros((2, 3, 3), dtype="float32")
    for a in range(2):
        for d in (-1, 0, 1):
            taps[a, (a + d) // 2 + 1, d + 1] = 1.0
    return taps


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UpsampleConv2D(keras.layers.Layer):
    """2x nearest up-sampling, padding by 1 and a 3x3 convolution, as one layer.

    Exactly ``Conv2D(filters, 3)(PeriodicPad2D(1, mode)(NearestUpsample2D(2)(x)))``
    with the same ``[3, 3, C_in, filters]`` kernel, but computed on the LR map
    (a 3x3 convolution to 4 x filters channels, one set per output phase,
    followed by depth-to-space). The up-sampled map is never materialized,
    which makes training about 6x faster on CPU for the high-resolution tail
    of the network.

    Args:
        filters: output channels.
        padding: "periodic" or "reflect" (of the up-sampled map).
        use_bias: add a bias.
        kernel_initializer: as for ``Conv2D`` (same fan-in/fan-out).
    """

    def __init__(
        self,
        filters: int,
        padding: str = "periodic",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_padding(padding)
        self.filters = _check_positive_int("filters", filters)
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(3, 3, channels, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = (
            self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
            if self.use_bias
            else None
        )

    def call(self, inputs, training=None):
        taps = ops.convert_to_tensor(_subpixel_taps())
        channels = self.kernel.shape[2]
        kernel = ops.einsum("ayd,bxe,deio->yxiabo", taps, taps, self.kernel)
        kernel = ops.reshape(kernel, (3, 3, channels, 4 * self.filters))
        mode = "periodic" if self.padding == "periodic" else "symmetric"
        x = pad2d(inputs, 1, mode, training=_is_training(training))
        y = ops.conv(x, kernel, strides=1, padding="valid")
        y = ops.depth_to_space(y, 2)
        if self.bias is not None:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape):
        return _spatial_shape(input_shape, lambda s: 2 * s, channels=self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "padding": self.padding,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AlignedBicubic(_FixedResampling):
    """Fixed bicubic up-sampling on the downsizer's grid (LR pixel k at HR pixel k r).

    Polyphase form: HR pixel k r + p is a 4-tap cubic combination of LR pixels
    k-1 .. k+2 with weights ``cubic(p / r - m)``, so the whole op is one 4x4
    convolution of the (periodically or reflect-) padded LR map to r^2 phases
    per channel, then depth-to-space. It keeps a dynamic input size and converts
    to TFLite builtins. No weights.

    Args:
        ratio: up-sampling ratio r.
        padding: "periodic" or "reflect".
    """

    def _kernel(self, channels: int) -> np.ndarray:
        r = self.ratio
        phases = np.arange(r)[:, None] / r
        taps = np.arange(-1, 3)[None, :]
        w = kernel("bicubic", phases - taps)  # [phase p, tap m], Keys a = -0.5
        # K[my, mx, c_in, (py, px, c_out)] = w[py, my] w[px, mx] delta(c_in, c_out)
        k = np.einsum("pm,qn,ic->mnipqc", w, w, np.eye(channels))
        return k.reshape(4, 4, channels, r * r * channels).astype("float32")

    def call(self, inputs):
        channels = inputs.shape[-1]
        kernel = ops.convert_to_tensor(self._kernel(channels))
        if self.padding == "periodic":
            x = ops.concatenate([inputs[:, -1:], inputs, inputs[:, :2]], axis=1)
            x = ops.concatenate([x[:, :, -1:], x, x[:, :, :2]], axis=2)
        else:
            x = ops.pad(inputs, ((0, 0), (1, 2), (1, 2), (0, 0)), mode="reflect")
        y = ops.conv(x, kernel, strides=1, padding="valid")
        return ops.depth_to_space(y, self.ratio)

    def compute_output_shape(self, input_shape):
        return _spatial_shape(input_shape, lambda s: s * self.ratio)
