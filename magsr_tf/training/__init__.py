"""The LR-only training loop: configs, strategies, checkpoints and resume
(docs/training.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": "magsr_tf.training.config",
    "TrainResult": "magsr_tf.training.config",
    "build_dataset": "magsr_tf.training.distribute",
    "build_strategy": "magsr_tf.training.distribute",
    "is_chief": "magsr_tf.training.distribute",
    "learning_rate": "magsr_tf.training.config",
    "load_initial_weights": "magsr_tf.training.train",
    "make_train_step": "magsr_tf.training.train",
    "noisy_batch": "magsr_tf.training.train",
    "recalibrate_batchnorm": "magsr_tf.training.train",
    "sr_validation": "magsr_tf.training.train",
    "train_arrays": "magsr_tf.training.train",
    "train_h5": "magsr_tf.training.train",
    "without_autotune": "magsr_tf.training.distribute",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
