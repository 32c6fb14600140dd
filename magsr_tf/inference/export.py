"""Deployment artifacts: SavedModel for TensorFlow Serving, TFLite, ``models.config``.

Layout (TensorFlow Serving's; it ignores non-numeric entries of a model folder)::

    saved_models/
        models.config            # model_config_list for a multi-model server
        NAME/
            model.keras          # the Keras SR model (written by `magsr-tf fit`)
            1/                   # SavedModel, signature "serving_default": lr -> sr
                saved_model.pb
                variables/
                assets.extra/magsr_tf.json   # ratio, channels, padding of the network
            NAME.tflite          # builtin-ops-only TFLite flatbuffer

Every write goes to a temporary name in the destination folder first and is
then renamed, so an interrupted export never leaves a half-written version
that a running model server would pick up.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import apply_umask, write_bytes

logger = logging.getLogger(__name__)

SIGNATURE_KEY = "serving_default"
METADATA_DIR = "assets.extra"
METADATA_FILE = "magsr_tf.json"
MODELS_CONFIG = "models.config"
DEFAULT_MODELS_ROOT = Path("saved_models")
CONTAINER_MODELS_ROOT = "/models"
"""Where the official ``tensorflow/serving`` docker image expects models (``-v ...:/models``)."""
FORMATS = ("saved_model", "tflite", "all")


def _tf():
    # TensorFlow is imported lazily so that `magsr-tf --help` stays fast.
    import tensorflow as tf

    return tf


def model_signature_info(sr_model) -> dict:
    """Ratio, channels and padding of a Keras SR model, stored beside its SavedModel."""
    from magsr_tf.nn.layers import PeriodicPad2D
    from magsr_tf.nn.model import INPUT_NAME, OUTPUT_NAME, model_ratio

    paddings = {layer.mode for layer in sr_model.layers if isinstance(layer, PeriodicPad2D)}
    return {
        "name": sr_model.name,
        "ratio": model_ratio(sr_model),
        "channels": int(sr_model.input_shape[-1]),
        "padding": paddings.pop() if len(paddings) == 1 else None,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "signature": SIGNATURE_KEY,
    }


def saved_model_versions(model_dir: Path) -> list[int]:
    """Numeric sub-folders of ``model_dir`` that hold a ``saved_model.pb``, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    versions = []
    for child in model_dir.iterdir():
        if child.name.isdigit() and (child / "saved_model.pb").is_file():
            versions.append(int(child.name))
    return sorted(versions)


def latest_saved_model(model_dir: Path, version: int | None = None) -> Path:
    """The SavedModel folder ``model_dir/VERSION`` (newest version by default).

    ``model_dir`` may also be a SavedModel folder itself.

    Raises:
        MagsrError: no SavedModel there.
    """
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").is_file() and version is None:
        return model_dir
    versions = saved_model_versions(model_dir)
    if version is not None:
        if version not in versions:
            raise MagsrError(
                f"no SavedModel version {version} in {model_dir}. "
                f"Received: version={version}, available={versions}"
            )
        return model_dir / str(version)
    if not versions:
        raise MagsrError(
            f"no SavedModel in {model_dir} (expected numeric version folders such as "
            f"{model_dir}/1/saved_model.pb; run `magsr-tf export` first)"
        )
    return model_dir / str(versions[-1])


def check_version(version: int) -> None:
    """Refuses a SavedModel version that is not a positive integer."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MagsrError(f"version must be a positive integer. Received: version={version!r}")


def _replace_dir(tmp: Path, target: Path, overwrite: bool) -> None:
    """Renames the finished folder ``tmp`` to ``target``, swapping out an old one if allowed."""
    if target.exists():
        if not overwrite:
            raise MagsrError(f"{target} already exists; pass overwrite=True (--overwrite)")
        # Directories cannot be os.replace'd onto non-empty ones: move the old one
        # aside first so that the target is never missing for longer than a rename.
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".old-{target.name}-"))
        os.rename(target, old / target.name)
        os.rename(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, target)


def export_saved_model(
    sr_model, model_dir: Path, version: int = 1, overwrite: bool = False
) -> Path:
    """Writes the SR model as a TF Serving SavedModel ``model_dir/VERSION/``.

    The signature ``serving_default`` takes ``lr``: float32 ``[batch, h, w, C]``
    (batch and spatial size dynamic) and returns ``{"sr": [batch, h r, w r, C]}``,
    inference mode (BatchNorm uses its moving statistics).

    Args:
        sr_model: the Keras SR model (LR -> SR).
        model_dir: the model's folder, e.g. ``saved_models/typeI_x8``; created if needed.
        version: TF Serving version number (a positive integer).
        overwrite: replace an existing version folder.

    Returns:
        The version folder.

    Raises:
        MagsrError: bad version, or the version exists and ``overwrite`` is False.
    """
    import keras

    from magsr_tf.nn.model import INPUT_NAME, OUTPUT_NAME

    tf = _tf()
    check_version(version)
    model_dir = Path(model_dir)
    target = model_dir / str(version)
    if target.exists() and not overwrite:
        raise MagsrError(
            f"SavedModel version {version} already exists in {model_dir}; "
            f"choose another version or overwrite it. Received: version={version}"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    info = model_signature_info(sr_model)
    spec = tf.TensorSpec([None, None, None, info["channels"]], tf.float32, name=INPUT_NAME)

    archive = keras.export.ExportArchive()
    archive.track(sr_model)

    def serve(lr):
        return {OUTPUT_NAME: sr_model(lr, training=False)}

    archive.add_endpoint(name=SIGNATURE_KEY, fn=serve, input_signature=[spec])
    # A dot-name is not numeric, so TF Serving never loads the half-written folder.
    tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".tmp-{version}-"))
    try:
        archive.write_out(str(tmp), verbose=False)
        (tmp / METADATA_DIR).mkdir(exist_ok=True)
        (tmp / METADATA_DIR / METADATA_FILE).write_text(json.dumps(info, indent=2))
        apply_umask(tmp)  # mkdtemp makes 0700: TF Serving may run as another user
        _replace_dir(tmp, target, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote SavedModel %s", target)
    return target


def read_metadata(saved_model_dir: Path) -> dict:
    """The ``assets.extra/magsr_tf.json`` of a SavedModel written here ({} if absent)."""
    path = Path(saved_model_dir) / METADATA_DIR / METADATA_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def export_tflite(source, out_path: Path, overwrite: bool = False) -> Path:
    """Converts a SavedModel (or a Keras SR model) into a builtin-ops-only TFLite file.

    The input keeps dynamic dimensions (shape signature ``[-1, -1, -1, C]``):
    resize the interpreter's input tensor to the image size before allocating.

    Args:
        source: a SavedModel folder (``saved_models/NAME/1``), a model folder
            (its newest version is used) or a Keras SR model.
        out_path: the ``.tflite`` file to write.
        overwrite: replace an existing file.

    Returns:
        ``out_path``.

    Raises:
        MagsrError: no SavedModel, an existing file, or a failed conversion.
    """
    tf = _tf()
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise MagsrError(f"{out_path} already exists; pass overwrite=True (--overwrite)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".tmp-tflite-") as scratch:
        if isinstance(source, (str, os.PathLike)):
            saved_model = latest_saved_model(Path(source))
        else:
            saved_model = export_saved_model(source, Path(scratch), version=1)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(saved_model), signature_keys=[SIGNATURE_KEY]
        )
        # Builtins only: the file must run on the plain LiteRT runtime, without Flex ops.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            flatbuffer = converter.convert()
        except Exception as exc:  # converter errors are long multi-line MLIR dumps
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MagsrError(f"TFLite conversion of {saved_model} failed: {first}") from exc
        write_bytes(out_path, flatbuffer)
    logger.info("wrote TFLite %s (%d bytes)", out_path, out_path.stat().st_size)
    return out_path


def list_served_models(root: Path) -> dict[str, list[int]]:
    """Model folders under ``root`` that hold at least one SavedModel version."""
    root = Path(root)
    if not root.is_dir():
        return {}
    found = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            versions = saved_model_versions(child)
            if versions:
                found[child.name] = versions
    return found


def resolve_model_dir(model: str | Path, models_root: Path = DEFAULT_MODELS_ROOT) -> Path:
    """A model given as a folder path, a ``.keras`` file, or a name under ``models_root``."""
    path = Path(model)
    if path.is_dir():
        return path
    if path.suffix == ".keras" and path.is_file():
        return path.parent
    candidate = Path(models_root) / str(model)
    if candidate.is_dir():
        return candidate
    raise MagsrError(f"no model folder {path} (nor {candidate}). Received: model={model!r}")
