"""`magsr-tf predict MODEL INPUT...`: super-resolve maps locally or through TF Serving."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import (
    Boundary,
    InferenceBatchSize,
    Noise,
    OutFolder,
    Overwrite,
    RootFolder,
    ValueRange,
    parse_pair,
)
from magsr_tf_cli.output import output_console


def predict(
    model: str = typer.Argument(
        ..., help="Model folder or name under --root (with --server: the served model's name)."
    ),
    inputs: list[str] = typer.Argument(
        ...,
        help="LR inputs: .npy files, FILE.h5:DATASET[a:b] (e.g. data/typeI.h5:lr/x8[0:4]), "
        "or pictures: one (m_z) or three (m_x m_y m_z).",
    ),
    out: OutFolder = Path("predictions"),
    server: str = typer.Option(
        None,
        "--server",
        help="TF Serving REST URL (http://localhost:8501) or gRPC address "
        "(grpc://localhost:8500); else local.",
    ),
    version: int = typer.Option(None, "--version", help="Model version (default: newest)."),
    batch_size: InferenceBatchSize = 8,
    padding: str = typer.Option(
        None, "--padding", help="Tile borders of large maps: periodic|reflect (default: model's)."
    ),
    value_range: ValueRange = None,
    root: RootFolder = Path("saved_models"),
    overwrite: Overwrite = False,
    max_memory: str = typer.Option(
        None,
        "--max-memory",
        help="Memory limit, e.g. 4G or 1500M (default: $MAGSR_MAX_MEMORY or 80% of "
        "MemAvailable); larger work is refused before it starts.",
    ),
    noise: Noise = "auto",
    boundary: Boundary = None,
) -> None:
    """Super-resolve LR maps with an exported model; writes NAME_sr.npy, NAME_sr.png and
    NAME_predict.json (with the estimated LR noise level)."""
    from magsr_tf.inference.noise_level import parse_noise
    from magsr_tf.jobs.predict import PredictConfig
    from magsr_tf.jobs.predict import predict as run

    config = PredictConfig(
        model=model,
        inputs=tuple(inputs),
        out_dir=out,
        server=server,
        version=version,
        batch_size=batch_size,
        padding=padding,
        models_root=root,
        value_range=parse_pair(value_range, ",", "LOW,HIGH"),
        overwrite=overwrite,
        max_memory=max_memory,
        noise=parse_noise(noise),
        boundary=boundary,
    )
    console = output_console(markup=False, highlight=False)
    for result in run(config):
        shape = "x".join(str(s) for s in result.sr.shape)
        files = ", ".join(str(f) for f in result.files)
        sigma = (result.noise or {}).get("sigma_mean")
        level = "" if sigma is None or sigma != sigma else f" (LR noise sigma {sigma:.3g})"
        console.print(f"{result.name}: SR [{shape}]{level} -> {files}")


def register(app: typer.Typer) -> None:
    """Add `predict` to `app`."""
    app.command("predict")(predict)
