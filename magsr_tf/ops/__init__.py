"""Array operators shared by every layer: the paper's Gaussian, downsizing, blurs,
interpolation, unit spins. NumPy only.
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "Degradation": "magsr_tf.ops.degradation",
    "DegradationOperator": "magsr_tf.ops.degradation",
    "add_noise": "magsr_tf.ops.noise",
    "apply_separable": "magsr_tf.ops.kernels",
    "check_ratio": "magsr_tf.ops.kernels",
    "degrade": "magsr_tf.ops.degradation",
    "downsample_direct": "magsr_tf.ops.downsample",
    "downsample_matrix": "magsr_tf.ops.downsample",
    "estimate_sigma": "magsr_tf.ops.degradation",
    "gaussian_kernel": "magsr_tf.ops.kernels",
    "gaussian_kernel_1d": "magsr_tf.ops.kernels",
    "gaussian_matrix": "magsr_tf.ops.kernels",
    "kernel": "magsr_tf.ops.interpolation",
    "lanczos": "magsr_tf.ops.lanczos",
    "lanczos_matrix": "magsr_tf.ops.lanczos",
    "operator_1d": "magsr_tf.ops.degradation",
    "parse_degradation": "magsr_tf.ops.degradation",
    "shorten": "magsr_tf.ops.noise",
    "source_index": "magsr_tf.ops.kernels",
    "spectral_noise": "magsr_tf.ops.noise",
    "unit_normalize": "magsr_tf.ops.spins",
    "upsample": "magsr_tf.ops.interpolation",
    "upsample_matrix": "magsr_tf.ops.interpolation",
    "upsample_tf": "magsr_tf.ops.interpolation",
    "wall_width": "magsr_tf.ops.degradation",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
