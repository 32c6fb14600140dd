"""Scoring against ground truth and interpolation: metrics, evaluate, experiments,
figures, report (docs/evaluation.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "CrossfeedConfig": "magsr_tf.evaluation.experiments",
    "EvaluateConfig": "magsr_tf.evaluation.evaluate",
    "EvaluationData": "magsr_tf.evaluation.evaluate",
    "NoiseConfig": "magsr_tf.evaluation.experiments",
    "ReportConfig": "magsr_tf.evaluation.report",
    "baseline_maps": "magsr_tf.evaluation.evaluate",
    "build_report": "magsr_tf.evaluation.report",
    "comparison_figure": "magsr_tf.evaluation.figures",
    "corr": "magsr_tf.evaluation.metrics",
    "corr_digits": "magsr_tf.evaluation.report",
    "crossfeed": "magsr_tf.evaluation.experiments",
    "crossfeed_section": "magsr_tf.evaluation.report",
    "crossfeed_table": "magsr_tf.evaluation.report",
    "distributions_figure": "magsr_tf.evaluation.figures",
    "evaluation_tables": "magsr_tf.evaluation.report",
    "fmt": "magsr_tf.evaluation.report",
    "gains": "magsr_tf.evaluation.evaluate",
    "kind_label": "magsr_tf.evaluation.evaluate",
    "load_test_split": "magsr_tf.evaluation.evaluate",
    "markdown_table": "magsr_tf.evaluation.report",
    "match_channels": "magsr_tf.evaluation.evaluate",
    "mean_std": "magsr_tf.evaluation.report",
    "model_folder": "magsr_tf.evaluation.evaluate",
    "mse": "magsr_tf.evaluation.metrics",
    "noise_curves_figure": "magsr_tf.evaluation.figures",
    "noise_maps": "magsr_tf.evaluation.experiments",
    "noise_response": "magsr_tf.evaluation.experiments",
    "noise_section": "magsr_tf.evaluation.report",
    "noise_table": "magsr_tf.evaluation.report",
    "paper_tables": "magsr_tf.evaluation.report",
    "pearson": "magsr_tf.evaluation.metrics",
    "per_image": "magsr_tf.evaluation.metrics",
    "physical_metrics": "magsr_tf.evaluation.evaluate",
    "psnr": "magsr_tf.evaluation.metrics",
    "psnr_table_convention": "magsr_tf.evaluation.metrics",
    "recursive_process": "magsr_tf.evaluation.experiments",
    "refine_maps": "magsr_tf.evaluation.evaluate",
    "resolve_data_path": "magsr_tf.evaluation.evaluate",
    "score": "magsr_tf.evaluation.metrics",
    "score_maps": "magsr_tf.evaluation.evaluate",
    "shipped_evaluation": "magsr_tf.evaluation.report",
    "spin_rgb": "magsr_tf.evaluation.figures",
    "summarize": "magsr_tf.evaluation.metrics",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
