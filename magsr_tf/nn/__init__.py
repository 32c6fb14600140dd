"""The network in Keras 3: custom layers, batch norm, the SR model, TF energies
(docs/training.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "AlignedBicubic": "magsr_tf.nn.layers",
    "BOUNDARIES": "magsr_tf.nn.energy",
    "FastBatchNormalization": "magsr_tf.nn.batchnorm",
    "GaussianDownsample": "magsr_tf.nn.layers",
    "ModelConfig": "magsr_tf.nn.model",
    "NearestUpsample2D": "magsr_tf.nn.layers",
    "PeriodicPad2D": "magsr_tf.nn.layers",
    "SpinEnergy": "magsr_tf.nn.energy",
    "UnitSpin": "magsr_tf.nn.layers",
    "UpsampleConv2D": "magsr_tf.nn.layers",
    "build_models": "magsr_tf.nn.model",
    "build_sr_model": "magsr_tf.nn.model",
    "load_sr_model": "magsr_tf.nn.model",
    "model_ratio": "magsr_tf.nn.model",
    "pad2d": "magsr_tf.nn.layers",
    "periodic_pad": "magsr_tf.nn.layers",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
