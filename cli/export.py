"""`magsr-tf export MODEL`: SavedModel for TF Serving, TFLite, models.config."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import RootFolder
from magsr_tf_cli.output import output_console


def export(
    model: str = typer.Argument(
        ..., help="Model folder (with model.keras) or a name under --root."
    ),
    fmt: str = typer.Option(
        "all",
        "--format",
        help="saved_model, tflite, all, or bioimageio (a BioImage Model Zoo package in --out).",
    ),
    version: int = typer.Option(
        None, "--version", help="SavedModel version (default: the newest existing one, or 1)."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Rewrite an existing version and TFLite file (bioimageio: the --out folder).",
    ),
    out: Path = typer.Option(
        None, "--out", help="Folder of the BioImage Model Zoo package (--format bioimageio)."
    ),
    root: RootFolder = Path("saved_models"),
    base_path: str = typer.Option(
        "/models",
        "--base-path",
        help="base_path prefix in models.config (the container's path); 'local' for "
        "absolute local paths.",
    ),
) -> None:
    """Export a trained SR model for TensorFlow Serving, TFLite or the BioImage Model Zoo."""
    from magsr_tf.jobs.export import ExportConfig, export_model

    config = ExportConfig(
        model=model,
        fmt=fmt,
        version=version,
        overwrite=overwrite,
        models_root=root,
        base_path=None if base_path == "local" else base_path,
        out=out,
    )
    result = export_model(config)
    console = output_console(markup=False, highlight=False)
    if result.saved_model is not None:
        state = "wrote" if result.saved_model_written else "kept"
        console.print(f"SavedModel ({state}): {result.saved_model}")
    if result.tflite is not None:
        state = "wrote" if result.tflite_written else "kept; --overwrite to rewrite"
        console.print(f"TFLite ({state}): {result.tflite}")
    if result.bioimageio is not None:
        console.print(f"BioImage Model Zoo package: {result.bioimageio}")
        console.print(f"check it with: bioimageio test {result.bioimageio}")
    if result.models_config is not None:
        console.print(f"models.config: {result.models_config}")
    if result.info:
        info = result.info
        console.print(
            f"signature serving_default: {info['input']} float32 [batch, h, w, {info['channels']}]"
            f" -> {info['output']} [batch, {info['ratio']}h, {info['ratio']}w, {info['channels']}]"
        )


def register(app: typer.Typer) -> None:
    """Add `export` to `app`."""
    app.command("export")(export)
