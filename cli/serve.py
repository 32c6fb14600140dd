"""`magsr-tf serve`: a local server speaking TensorFlow Serving's REST and gRPC APIs."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import BatchMaps, ModelsFolder
from magsr_tf_cli.output import output_console


def serve(
    port: int = typer.Option(8501, "--port", help="REST TCP port (TF Serving's default: 8501)."),
    grpc_port: int = typer.Option(
        None,
        "--grpc-port",
        help="gRPC TCP port (default 8500, TF Serving's, when the deploy extra is installed).",
    ),
    no_grpc: bool = typer.Option(False, "--no-grpc", help="Serve REST only."),
    models: ModelsFolder = Path("saved_models"),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to bind (0.0.0.0 exposes it to the network)."
    ),
    max_concurrent: int = typer.Option(
        2, "--max-concurrent", help="Model calls at once (the others wait)."
    ),
    max_inflight: int = typer.Option(
        32, "--max-inflight", help="Predict requests admitted at once (more get 503)."
    ),
    batch_maps: BatchMaps = 0,
) -> None:
    """Serve every SavedModel under --models over REST and gRPC (Ctrl-C stops)."""
    from importlib.util import find_spec

    from magsr_tf.serving.launcher import available_models, start_servers
    from magsr_tf.serving.protocol import ServeConfig

    console = output_console()
    if grpc_port is None and not no_grpc:
        # A plain install has no gRPC stack: serve REST alone rather than fail.
        if find_spec("grpc") is None or find_spec("tensorflow_serving") is None:
            no_grpc = True
            console.print(
                'REST only: gRPC needs the deploy extra (pip install "magsr-tf[deploy]").',
                markup=False,
            )
        else:
            grpc_port = 8500
    config = ServeConfig(
        models_root=models,
        host=host,
        port=port,
        grpc_port=None if no_grpc else grpc_port,
        max_concurrent=max_concurrent,
        max_inflight=max_inflight,
        batch_maps=batch_maps,
    )
    servers = start_servers(config)
    listed = available_models(models)
    if not listed:
        console.print(
            f"No SavedModel under {models} yet (run `magsr-tf export`).",
            style="yellow",
            markup=False,
        )
    for name, versions in listed.items():
        console.print(f"{servers.rest_url}/v1/models/{name}  versions {versions}", markup=False)
    if servers.grpc_target is not None:
        console.print(f"gRPC (TF Serving PredictionService): {servers.grpc_target}", markup=False)
    console.print("Serving; Ctrl-C stops.")
    try:
        while servers.alive:
            servers.wait(1.0)
    except KeyboardInterrupt:
        console.print("Stopped.")
    finally:
        servers.stop()


def register(app: typer.Typer) -> None:
    """Add `serve` to `app`."""
    app.command("serve")(serve)
