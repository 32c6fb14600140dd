"""Datasets: the HDF5 format, annealing rows, generate (resumable, or on a Dask cluster),
the training pipeline and image patches (docs/datasets.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "ArraySource": "magsr_tf.data.pipeline",
    "ClusterSpec": "magsr_tf.data.cluster",
    "DatasetInfo": "magsr_tf.data.format",
    "GenerateConfig": "magsr_tf.data.generation",
    "H5Source": "magsr_tf.data.pipeline",
    "anneal_rows": "magsr_tf.data.annealing",
    "anneal_task": "magsr_tf.data.cluster",
    "augment": "magsr_tf.data.pipeline",
    "batches": "magsr_tf.data.pipeline",
    "check_existing_output": "magsr_tf.data.resume",
    "check_finite": "magsr_tf.data.format",
    "check_layout": "magsr_tf.data.format",
    "check_ratio": "magsr_tf.data.format",
    "check_workers": "magsr_tf.data.cluster",
    "connect": "magsr_tf.data.cluster",
    "cores": "magsr_tf.data.annealing",
    "create_layout": "magsr_tf.data.format",
    "default_ratios": "magsr_tf.data.generation",
    "error_line": "magsr_tf.data.format",
    "first_difference": "magsr_tf.data.format",
    "generate": "magsr_tf.data.generation",
    "interrupts_deferred": "magsr_tf.data.resume",
    "local_rows": "magsr_tf.data.annealing",
    "lr_phase_images": "magsr_tf.data.lr_images",
    "lr_rows": "magsr_tf.data.lr_images",
    "make_folder": "magsr_tf.data.resume",
    "mark_complete": "magsr_tf.data.resume",
    "open_info": "magsr_tf.data.format",
    "open_partial": "magsr_tf.data.resume",
    "parse_cluster": "magsr_tf.data.cluster",
    "partial_path": "magsr_tf.data.format",
    "phase_offsets": "magsr_tf.data.lr_images",
    "physics_modules": "magsr_tf.data.annealing",
    "publish": "magsr_tf.data.resume",
    "random_patches": "magsr_tf.data.patches",
    "read_parameters": "magsr_tf.data.format",
    "read_rows": "magsr_tf.data.format",
    "rotate_spins": "magsr_tf.data.pipeline",
    "stream_rows": "magsr_tf.data.cluster",
    "task_token": "magsr_tf.data.cluster",
    "write_chunk": "magsr_tf.data.resume",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
