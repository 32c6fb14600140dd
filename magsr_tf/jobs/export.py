"""``magsr-tf export``: a trained model as a TF Serving SavedModel, TFLite, ``models.config``,
or a BioImage Model Zoo package (``--format bioimageio --out DIR``,
:mod:`magsr_tf.inference.bioimageio`).

Nothing that exists is replaced without ``overwrite``: a new SavedModel
version is refused when it would leave a stale TFLite file beside it, and the
models root's ``models.config`` is merged, never rewritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.inference.export import (
    CONTAINER_MODELS_ROOT,
    DEFAULT_MODELS_ROOT,
    FORMATS,
    check_version,
    export_saved_model,
    export_tflite,
    read_metadata,
    resolve_model_dir,
    saved_model_versions,
)
from magsr_tf.inference.models_config import check_models_config, merge_models_config

logger = logging.getLogger(__name__)

EXPORT_FORMATS = (*FORMATS, "bioimageio")
"""``--format`` values: the TF Serving / TFLite ones and the BioImage Model Zoo package."""


@dataclass(frozen=True)
class ExportConfig:
    """What `magsr-tf export` writes.

    Attributes:
        model: a model folder (holding ``model.keras``) or a name under ``models_root``.
        fmt: "saved_model", "tflite", "all" or "bioimageio" (the SavedModel and a
            BioImage Model Zoo package in ``out``).
        version: SavedModel version; None = the newest existing one, or 1 if none
            (an existing one is then kept, not rewritten).
        overwrite: rewrite an existing version / TFLite file. Without it an
            existing TFLite file is kept with a kept SavedModel, and refused
            (before any work) when a new SavedModel version would make it stale.
        models_root: where models live and where ``models.config`` is written.
        base_path: ``base_path`` prefix in ``models.config`` (None: absolute local paths).
        out: the BioImage Model Zoo package folder (``fmt="bioimageio"`` only); an
            existing one is replaced only with ``overwrite``.
    """

    model: str
    fmt: str = "all"
    version: int | None = None
    overwrite: bool = False
    models_root: Path = DEFAULT_MODELS_ROOT
    base_path: str | None = CONTAINER_MODELS_ROOT
    out: Path | None = None

    def __post_init__(self):
        if self.fmt not in EXPORT_FORMATS:
            raise MagsrError(
                f"format must be one of {EXPORT_FORMATS}. Received: format={self.fmt!r}"
            )
        if (self.fmt == "bioimageio") != (self.out is not None):
            raise MagsrError(
                "--format bioimageio needs --out DIR (the package folder), and --out goes "
                f"with --format bioimageio only. Received: format={self.fmt!r}, out={self.out}"
            )
        if self.version is not None:
            check_version(self.version)


@dataclass
class ExportResult:
    """Paths written (or kept) by :func:`export_model`.

    Attributes:
        model_dir: the model's folder.
        saved_model: the SavedModel version folder, if one exists now.
        saved_model_written: False when an existing version was kept.
        tflite: the TFLite file, if requested.
        models_config: the ``models.config`` written, if the model sits in a models root.
        info: ratio / channels / padding of the network.
        bioimageio: the ``rdf.yaml`` of the BioImage Model Zoo package, if requested.
    """

    model_dir: Path
    saved_model: Path | None = None
    saved_model_written: bool = False
    tflite: Path | None = None
    tflite_written: bool = False
    models_config: Path | None = None
    info: dict = field(default_factory=dict)
    bioimageio: Path | None = None


def export_model(config: ExportConfig) -> ExportResult:
    """Writes the requested artifacts of one trained model and refreshes ``models.config``."""
    from magsr_tf.nn.model import load_sr_model

    model_dir = resolve_model_dir(config.model, config.models_root)
    result = ExportResult(model_dir=model_dir)
    existing = saved_model_versions(model_dir)
    version = config.version or (existing[-1] if existing else 1)
    # The package reads an existing SavedModel: its --overwrite is the package's.
    keep = version in existing and (not config.overwrite or config.fmt == "bioimageio")
    if config.version is not None and keep and config.fmt in ("saved_model", "all"):
        raise MagsrError(
            f"SavedModel version {version} already exists in {model_dir}; "
            f"use another --version or --overwrite. Received: version={version}"
        )
    if config.out is not None and Path(config.out).exists() and not config.overwrite:
        raise MagsrError(f"{config.out} already exists; use another --out or --overwrite")
    tflite = model_dir / f"{model_dir.name}.tflite"
    wants_tflite = config.fmt in ("tflite", "all")
    if wants_tflite and tflite.exists() and not config.overwrite and not keep:
        raise MagsrError(
            f"{tflite} already exists and would no longer match the new SavedModel; "
            "pass --overwrite to replace it"
        )
    root = model_dir.parent
    in_root = root.resolve() == Path(config.models_root).resolve()
    if in_root:
        check_models_config(root)
    sr_model = None
    if not keep:
        sr_model = load_sr_model(model_dir)
        result.saved_model = export_saved_model(
            sr_model, model_dir, version, overwrite=config.overwrite
        )
        result.saved_model_written = True
    else:
        result.saved_model = model_dir / str(version)
    result.info = read_metadata(result.saved_model)
    if wants_tflite:
        result.tflite = tflite
        if config.overwrite or not tflite.exists():
            export_tflite(result.saved_model, tflite, overwrite=True)
            result.tflite_written = True
    if config.fmt == "bioimageio":
        from magsr_tf.inference.bioimageio import export_bioimageio

        result.bioimageio = export_bioimageio(
            model_dir, Path(config.out), version, overwrite=config.overwrite
        )
    if in_root:
        result.models_config = merge_models_config(root, [model_dir.name], config.base_path)
    return result
