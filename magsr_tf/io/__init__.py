"""Files: atomic writers, pictures as spin maps, microscope files with a pixel size,
checked LR inputs. No TensorFlow at import.
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "apply_umask": "magsr_tf.io.writers",
    "as_lr_batch": "magsr_tf.io.inputs",
    "atomic_path": "magsr_tf.io.writers",
    "canonical_unit": "magsr_tf.io.formats",
    "check_lr_values": "magsr_tf.io.inputs",
    "check_memory": "magsr_tf.io.inputs",
    "check_picture": "magsr_tf.io.formats",
    "colour_to_grey": "magsr_tf.io.formats",
    "current_umask": "magsr_tf.io.writers",
    "format_bytes": "magsr_tf.io.inputs",
    "images_to_spins": "magsr_tf.io.pictures",
    "input_shapes": "magsr_tf.io.inputs",
    "InputBatch": "magsr_tf.io.inputs",
    "is_format_path": "magsr_tf.io.formats",
    "is_image_path": "magsr_tf.io.pictures",
    "load_inputs": "magsr_tf.io.inputs",
    "lr_bytes": "magsr_tf.io.inputs",
    "memory_limit": "magsr_tf.io.inputs",
    "normalize_component": "magsr_tf.io.pictures",
    "npy_header": "magsr_tf.io.inputs",
    "parse_memory": "magsr_tf.io.inputs",
    "Picture": "magsr_tf.io.formats",
    "picture_spins": "magsr_tf.io.pictures",
    "read_format": "magsr_tf.io.formats",
    "read_h5": "magsr_tf.io.inputs",
    "read_image": "magsr_tf.io.pictures",
    "read_npy": "magsr_tf.io.inputs",
    "read_picture": "magsr_tf.io.pictures",
    "scale_bar_figure": "magsr_tf.io.formats",
    "spins_to_uint8": "magsr_tf.io.pictures",
    "to_jsonable": "magsr_tf.io.writers",
    "write_bytes": "magsr_tf.io.writers",
    "write_figure": "magsr_tf.io.writers",
    "write_gwy": "magsr_tf.io.formats",
    "write_json": "magsr_tf.io.writers",
    "write_npy": "magsr_tf.io.writers",
    "write_png": "magsr_tf.io.pictures",
    "write_sr_files": "magsr_tf.io.formats",
    "write_text": "magsr_tf.io.writers",
    "write_tiff": "magsr_tf.io.formats",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
