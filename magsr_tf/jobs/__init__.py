"""What a command does end to end: fit, fit-image, predict, refine, reproduce."""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "ExportConfig": "magsr_tf.jobs.export",
    "ExportResult": "magsr_tf.jobs.export",
    "FitConfig": "magsr_tf.jobs.fit",
    "FitImageConfig": "magsr_tf.jobs.fit_image",
    "FitImageResult": "magsr_tf.jobs.fit_image",
    "ModelRecipe": "magsr_tf.jobs.reproduce",
    "PredictConfig": "magsr_tf.jobs.predict",
    "PredictOutput": "magsr_tf.jobs.predict",
    "RefineJob": "magsr_tf.jobs.refine",
    "RefineOutput": "magsr_tf.jobs.refine",
    "ReproduceConfig": "magsr_tf.jobs.reproduce",
    "Step": "magsr_tf.jobs.reproduce",
    "calibrate_model": "magsr_tf.jobs.fit",
    "calibrate_noise_level": "magsr_tf.jobs.fit",
    "central_crop": "magsr_tf.jobs.fit_image",
    "check_model_dir": "magsr_tf.jobs.fit",
    "committed_files": "magsr_tf.jobs.fit",
    "ensure_dataset": "magsr_tf.jobs.fit",
    "evaluation_path": "magsr_tf.jobs.reproduce",
    "export_model": "magsr_tf.jobs.export",
    "fingerprint": "magsr_tf.jobs.reproduce",
    "fit_options": "magsr_tf.jobs.reproduce",
    "git_commit": "magsr_tf.jobs.fit",
    "make_predictor": "magsr_tf.jobs.predict",
    "model_start": "magsr_tf.jobs.refine",
    "noise_estimate": "magsr_tf.jobs.refine",
    "noise_probe": "magsr_tf.jobs.refine",
    "plan": "magsr_tf.jobs.reproduce",
    "predict_noise": "magsr_tf.jobs.predict",
    "prepare_fit_data": "magsr_tf.jobs.fit_image",
    "quick_dataset_path": "magsr_tf.jobs.fit",
    "read_state": "magsr_tf.jobs.reproduce",
    "record": "magsr_tf.jobs.refine",
    "refine_array": "magsr_tf.jobs.refine",
    "remove_stale_temporaries": "magsr_tf.jobs.predict",
    "run_refine": "magsr_tf.jobs.refine",
    "score_against_truth": "magsr_tf.jobs.fit_image",
    "score_test_split": "magsr_tf.jobs.fit",
    "tflite_path": "magsr_tf.jobs.reproduce",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
