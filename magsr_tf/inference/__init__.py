"""Applying a trained model: arrays, tiling, the SavedModel predictor, export
(TF Serving, TFLite, BioImage Model Zoo: docs/deployment.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "LocalPredictor": "magsr_tf.inference.predictor",
    "MapRows": "magsr_tf.inference.tiling",
    "NoiseAwareSR": "magsr_tf.inference.noise_switch",
    "NoiseEstimate": "magsr_tf.inference.noise_level",
    "NpyBands": "magsr_tf.inference.tiling",
    "apply_model": "magsr_tf.inference.apply",
    "calibrate": "magsr_tf.inference.noise_level",
    "check_models_config": "magsr_tf.inference.models_config",
    "check_version": "magsr_tf.inference.export",
    "companion_dir": "magsr_tf.inference.noise_switch",
    "estimate_noise": "magsr_tf.inference.noise_level",
    "export_bioimageio": "magsr_tf.inference.bioimageio",
    "export_saved_model": "magsr_tf.inference.export",
    "export_tflite": "magsr_tf.inference.export",
    "latest_saved_model": "magsr_tf.inference.export",
    "list_served_models": "magsr_tf.inference.export",
    "load_model": "magsr_tf.inference.apply",
    "load_noise_aware": "magsr_tf.inference.noise_switch",
    "lr_residual": "magsr_tf.inference.noise_level",
    "merge_models_config": "magsr_tf.inference.models_config",
    "model_channels": "magsr_tf.inference.apply",
    "model_padding": "magsr_tf.inference.apply",
    "model_signature_info": "magsr_tf.inference.export",
    "models_config_text": "magsr_tf.inference.models_config",
    "parse_models_config": "magsr_tf.inference.models_config",
    "parse_noise": "magsr_tf.inference.noise_level",
    "policy_kappa": "magsr_tf.inference.noise_switch",
    "probe_ratio": "magsr_tf.inference.predictor",
    "read_calibration": "magsr_tf.inference.noise_level",
    "read_metadata": "magsr_tf.inference.export",
    "refine_policy": "magsr_tf.inference.noise_switch",
    "resolve_model_dir": "magsr_tf.inference.export",
    "run_predictor": "magsr_tf.inference.predictor",
    "saved_model_versions": "magsr_tf.inference.export",
    "sigma_from_residual": "magsr_tf.inference.noise_level",
    "sr_memory": "magsr_tf.inference.tiling",
    "super_resolve": "magsr_tf.inference.apply",
    "switch_level": "magsr_tf.inference.noise_switch",
    "switch_sigma": "magsr_tf.inference.noise_switch",
    "tiled_apply": "magsr_tf.inference.tiling",
    "validate_rdf": "magsr_tf.inference.bioimageio",
    "write_calibration": "magsr_tf.inference.noise_level",
    "write_models_config": "magsr_tf.inference.models_config",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
