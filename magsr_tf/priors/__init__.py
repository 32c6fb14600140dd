"""Physics-informed reconstruction without training: refine and the image prior
(docs/physics_prior.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "PriorConfig": "magsr_tf.priors.image_prior",
    "PriorResult": "magsr_tf.priors.image_prior",
    "RefineConfig": "magsr_tf.priors.refine",
    "RefineResult": "magsr_tf.priors.refine",
    "check_lr": "magsr_tf.priors.refine",
    "choose_anisotropy": "magsr_tf.priors.image_prior",
    "degradation_sigma": "magsr_tf.priors.image_prior",
    "describe": "magsr_tf.priors.refine",
    "intensity_scale": "magsr_tf.priors.image_prior",
    "misfit_weights": "magsr_tf.priors.refine",
    "reconstruct": "magsr_tf.priors.image_prior",
    "sign_changes": "magsr_tf.priors.image_prior",
    "synthetic_domains": "magsr_tf.priors.image_prior",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
