"""The SR network of Lee et al. (Sci. Rep. 2023, Experimental section).

LR ``[n, h, w, C]`` -> expander: 4 x (pad 1, Conv2D 64 3x3, BatchNorm, LeakyReLU)
-> log2(r) up-sampling blocks (pad 1, Conv2D 3x3, BatchNorm, LeakyReLU, 2x
nearest up-sampling) with filters (16, 8) / (32, 16, 8) / (48, 32, 16, 8) for
x4 / x8 / x16 -> pad 1, Conv2D C 3x3 -> SR ``[n, h r, w r, C]``.

The *SR model* (LR -> SR) is what users get and export; it ends with
:class:`~magsr_tf.nn.layers.UnitSpin` because spins are unit vectors. The
*training model* (LR -> LR) appends the fixed Gaussian downsizing, and the loss
is MSE(LR in, LR out): no high-resolution data are ever needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from magsr_tf.errors import MagsrError
from magsr_tf.nn.batchnorm import FastBatchNormalization
from magsr_tf.nn.layers import (
    AlignedBicubic,
    GaussianDownsample,
    NearestUpsample2D,
    PeriodicPad2D,
    UnitSpin,
    UpsampleConv2D,
)
from magsr_tf.ops.kernels import RATIOS

UPSAMPLING_FILTERS = {4: (16, 8), 8: (32, 16, 8), 16: (48, 32, 16, 8)}
EXPANDER_LAYERS = 4
EXPANDER_FILTERS = 64
INPUT_NAME = "lr"
OUTPUT_NAME = "sr"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the SR network.

    Attributes:
        ratio: super-resolution ratio, 4, 8 or 16 (log2(r) up-sampling blocks).
        channels: 3 for spin vectors, 1 for a single component such as MOKE's m_z.
        padding: "periodic" for simulated lattices, "reflect" for microscope images.
        leaky_slope: negative slope of the LeakyReLU activations (unstated in the paper).
        normalize_in_training: project the SR map onto unit spins before the
            downsizing in the training graph too (the exported SR model always does).
        residual: add the fixed grid-aligned bicubic up-sampling of the input to
            the last convolution's output (a global skip connection, as in
            VDSR-type SR networks; the final convolution then starts at zero), so
            the network learns the correction to interpolation. False gives the
            paper's plain graph.
        fused_upsampling: compute each "2x up-sampling -> pad -> 3x3 conv" as one
            :class:`~magsr_tf.nn.layers.UpsampleConv2D` (the same function and
            weights, ~6x faster on CPU) instead of three separate layers.
        degradation: the blur of the fixed downsizing layer (None: the paper's
            sigma = 1 Gaussian; else a spec such as ``"gaussian:1.5"``, ``"box"``
            or ``"psf:FILE.npy"``, see :mod:`magsr_tf.ops.degradation`). It is saved in
            the layer's config, so exported models keep it.
    """

    ratio: int = 8
    channels: int = 3
    padding: str = "periodic"
    leaky_slope: float = 0.2
    normalize_in_training: bool = True
    residual: bool = True
    fused_upsampling: bool = True
    degradation: str | None = None

    def __post_init__(self):
        if self.degradation is not None:
            from magsr_tf.ops.degradation import parse_degradation

            parse_degradation(self.degradation)  # one-line error on a bad spec
        if self.ratio not in RATIOS:
            raise MagsrError(f"ratio must be one of {RATIOS}. Received: ratio={self.ratio}")
        if self.channels not in (1, 3):
            raise MagsrError(f"channels must be 1 or 3. Received: channels={self.channels}")
        if self.padding not in ("periodic", "reflect"):
            raise MagsrError(
                f"padding must be 'periodic' or 'reflect'. Received: padding={self.padding!r}"
            )
        if not 0.0 <= self.leaky_slope < 1.0:
            raise MagsrError(
                f"leaky_slope must be in [0, 1). Received: leaky_slope={self.leaky_slope}"
            )


def _batch_norm(name: str):
    # Synchronized over replicas: with several replicas the statistics are those of
    # the global batch, so training matches a single-device run and the moving
    # statistics stay identical on every replica and worker. FastBatchNormalization
    # is Keras' layer with a fused (one replica) or written-out (several) training pass.
    return FastBatchNormalization(synchronized=True, name=name)


def _conv_block(x, filters: int, prefix: str, config: ModelConfig):
    x = PeriodicPad2D(1, config.padding, name=f"{prefix}_pad")(x)
    # BatchNorm follows, so a bias would be cancelled by its mean subtraction.
    x = keras.layers.Conv2D(filters, 3, use_bias=False, name=f"{prefix}_conv")(x)
    x = _batch_norm(f"{prefix}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=config.leaky_slope, name=f"{prefix}_act")(x)


def _fused_block(x, filters: int, prefix: str, config: ModelConfig):
    # The previous block's 2x up-sampling, this block's padding and conv, in one layer.
    x = UpsampleConv2D(filters, config.padding, use_bias=False, name=f"{prefix}_conv")(x)
    x = _batch_norm(f"{prefix}_bn")(x)
    return keras.layers.LeakyReLU(negative_slope=config.leaky_slope, name=f"{prefix}_act")(x)


def build_models(config: ModelConfig) -> tuple[keras.Model, keras.Model]:
    """Builds the SR model (LR -> SR) and the training model (LR -> LR) sharing weights.

    Returns:
        ``(sr_model, training_model)``. Layer names are deterministic:
        ``expander_{1..4}_{pad,conv,bn,act}``, ``up_{1..n}_{pad,conv,bn,act,upsample}``,
        ``sr_pad``, ``sr_conv``, ``sr`` and ``downsample``. With
        ``fused_upsampling`` the layers ``up_{j}_upsample``, ``up_{j+1}_pad`` and
        ``up_{j+1}_conv`` are one layer named ``up_{j+1}_conv`` (and
        ``up_{n}_upsample``, ``sr_pad``, ``sr_conv`` are ``sr_conv``).
    """
    inputs = keras.Input((None, None, config.channels), name=INPUT_NAME)
    x = inputs
    for i in range(1, EXPANDER_LAYERS + 1):
        x = _conv_block(x, EXPANDER_FILTERS, f"expander_{i}", config)
    for j, filters in enumerate(UPSAMPLING_FILTERS[config.ratio], start=1):
        if config.fused_upsampling and j > 1:
            x = _fused_block(x, filters, f"up_{j}", config)
        else:
            x = _conv_block(x, filters, f"up_{j}", config)
        if not config.fused_upsampling:
            x = NearestUpsample2D(2, name=f"up_{j}_upsample")(x)
    init = "zeros" if config.residual else "glorot_uniform"
    if config.fused_upsampling:
        raw = UpsampleConv2D(
            config.channels, config.padding, kernel_initializer=init, name="sr_conv"
        )(x)
    else:
        x = PeriodicPad2D(1, config.padding, name="sr_pad")(x)
        raw = keras.layers.Conv2D(config.channels, 3, kernel_initializer=init, name="sr_conv")(x)
    if config.residual:
        base = AlignedBicubic(config.ratio, config.padding, name="bicubic_skip")(inputs)
        raw = keras.layers.Add(name="sr_residual")([raw, base])
    unit = UnitSpin(name=OUTPUT_NAME)
    sr = unit(raw)
    sr_model = keras.Model(inputs, sr, name=f"sr_x{config.ratio}")

    lr_source = sr if config.normalize_in_training else raw
    lr_out = GaussianDownsample(
        config.ratio, config.padding, degradation=config.degradation, name="downsample"
    )(lr_source)
    training_model = keras.Model(inputs, lr_out, name=f"train_x{config.ratio}")
    return sr_model, training_model


def build_sr_model(config: ModelConfig) -> keras.Model:
    """The SR model alone (LR -> unit-spin SR), e.g. for tests and export."""
    return build_models(config)[0]


def load_sr_model(path: str | Path) -> keras.Model:
    """Loads a saved SR model.

    Args:
        path: a ``.keras`` file, or a model folder holding ``model.keras``
            (as written by ``magsr-tf fit``).

    Raises:
        MagsrError: missing or unreadable model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise MagsrError(f"no Keras model at {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # corrupt zip, foreign file, missing layer class, ...
        raise MagsrError(f"cannot load the model {path}: {exc}") from exc


def model_ratio(sr_model: keras.Model) -> int:
    """The up-sampling ratio of an SR model (2 ** number of up-sampling layers)."""
    n_up = sum(isinstance(layer, (NearestUpsample2D, UpsampleConv2D)) for layer in sr_model.layers)
    return 2**n_up
