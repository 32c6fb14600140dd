"""`magsr-tf serve`: a local server speaking TensorFlow Serving's REST API."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.output import output_console


def serve(
    port: int = typer.Option(8501, "--port", help="TCP port (TF Serving's REST default: 8501)."),
    models: Path = typer.Option(Path("saved_models"), "--models", help="Models root folder."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it to the network)."
    ),
) -> None:
    """Serve every SavedModel under --models at /v1/models/NAME (Ctrl-C stops)."""
    from magsr_tf.serve import ServeConfig, available_models, make_server

    server = make_server(ServeConfig(models_root=models, host=host, port=port))
    console = output_console()
    listed = available_models(models)
    if not listed:
        console.print(
            f"No SavedModel under {models} yet (run `magsr-tf export`).",
            style="yellow",
            markup=False,
        )
    for name, versions in listed.items():
        console.print(f"{server.url}/v1/models/{name}  versions {versions}")
    console.print("Serving; Ctrl-C stops.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("Stopped.")
    finally:
        server.server_close()


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)
