"""`magsr-tf predict MODEL INPUT...`: super-resolve maps locally or through TF Serving."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.output import output_console


def _parse_range(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"expected LOW,HIGH. Received: {value!r}") from exc
    return low, high


def predict(
    model: str = typer.Argument(
        ..., help="Model folder or name under --root (with --server: the served model's name)."
    ),
    inputs: list[str] = typer.Argument(
        ...,
        help="LR inputs: .npy files, FILE.h5:DATASET[a:b] (e.g. data/typeI.h5:lr/x8[0:4]), "
        "or pictures: one (m_z) or three (m_x m_y m_z).",
    ),
    out: Path = typer.Option(Path("predictions"), "--out", help="Output folder."),
    server: str = typer.Option(
        None,
        "--server",
        help="TF Serving REST URL (http://localhost:8501) or gRPC address "
        "(grpc://localhost:8500); else local.",
    ),
    version: int = typer.Option(None, "--version", help="Model version (default: newest)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Maps per call."),
    padding: str = typer.Option(
        None, "--padding", help="Tile borders of large maps: periodic|reflect (default: model's)."
    ),
    value_range: str = typer.Option(
        None, "--range", help="Pixel values of m=-1 and m=+1 for pictures, 'LOW,HIGH'."
    ),
    root: Path = typer.Option(Path("saved_models"), "--root", help="Models root folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Super-resolve LR maps with an exported model; writes NAME_sr.npy and NAME_sr.png."""
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
        value_range=_parse_range(value_range),
        overwrite=overwrite,
    )
    console = output_console(markup=False, highlight=False)
    for result in run(config):
        shape = "x".join(str(s) for s in result.sr.shape)
        files = ", ".join(str(f) for f in result.files)
        console.print(f"{result.name}: SR [{shape}] -> {files}")


def register(app: typer.Typer) -> None:
    """Add `predict` to `app`."""
    app.command("predict")(predict)
