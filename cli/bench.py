"""`magsr-tf bench ...`: throughput benchmarks (print figures, never assert)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from magsr_tf_cli.options import (
    BatchMaps,
    JsonRows,
    Lattice,
    ModelsFolder,
    PatchEpochs,
    Patches,
    Ratio,
    TrainBatchSize,
    Unresolved,
    Workers,
)
from magsr_tf_cli.output import print_table

bench_app = typer.Typer(help="Benchmarks: print throughput and ratios to in-run references.")


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _show(title: str, rows: list[dict], json_out: Path | None) -> None:
    # One column per measured configuration, one row per figure: the figures
    # are many, the configurations few, so this stays readable in 80 columns.
    # Every key of any row, in first-seen order (rows may add their own, e.g. the prior's K).
    keys = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[key] + [_cell(row.get(key, "")) for row in rows] for key in keys]
    print_table(title, [""] + [f"#{i + 1}" for i in range(len(rows))], cells)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))


@bench_app.command("anneal")
def anneal(
    lattice: Lattice = 128,
    sweeps: int = typer.Option(0, help="Sweeps per measurement (0: the benchmark's default)."),
    workers: Workers = 0,
    json_out: JsonRows = None,
) -> None:
    """Spin updates per second for Type I and Type II vs a plain NumPy Metropolis."""
    from magsr_tf.benchmarks.anneal import bench_anneal

    rows = bench_anneal(lattice=lattice, sweeps=sweeps or None, workers=workers or None)
    _show("Annealer throughput", rows, json_out)


@bench_app.command("train")
def train(
    seconds: float = typer.Option(20.0, help="Seconds of timed training per ratio."),
    batch_size: int = typer.Option(0, help="Batch size (0: the training default)."),
    json_out: JsonRows = None,
) -> None:
    """Training throughput (LR images/s) for x4, x8, x16 and the fraction of conv FLOP/s."""
    from magsr_tf.benchmarks.train import bench_train

    rows = bench_train(seconds=seconds, batch_size=batch_size or None)
    _show("Training throughput", rows, json_out)


@bench_app.command("refine")
def refine(
    states: int = typer.Option(16, help="Annealed Type I states refined together."),
    steps: int = typer.Option(0, help="Refinement steps (0: refine's default)."),
    seconds: float = typer.Option(10.0, help="Seconds of the training-step reference."),
    noise: float = typer.Option(
        0.05, "--noise", help="LR noise sigma of the noisy row (0: clean row only)."
    ),
    json_out: JsonRows = None,
) -> None:
    """Type I x8 refinements per second (clean and noisy LR) vs one x8 training step."""
    from magsr_tf.benchmarks.refine import bench_refine

    rows = bench_refine(states=states, steps=steps or None, seconds=seconds, noise=noise)
    _show("Physics-informed refinement", rows, json_out)


@bench_app.command("profile")
def profile(
    ratio: Ratio = 8,
    by: str = typer.Option("op", help="Group by 'op' (op type) or 'layer' (layer and pass)."),
    steps: int = typer.Option(10, help="Profiled training steps (after 3 warm-up steps)."),
    batch_size: TrainBatchSize = 32,
    top: int = typer.Option(25, help="Rows to show (the rest are summed)."),
    logdir: Path = typer.Option(None, help="Keep the profiler trace here (for TensorBoard)."),
    json_out: Path = typer.Option(None, "--json", help="Also write all rows as JSON."),
) -> None:
    """Where the training step's time goes: op time per op type or per layer."""
    from magsr_tf.benchmarks.profile import profile_training

    rows = profile_training(ratio, batch_size, steps, group=by, logdir=logdir)
    shown, rest = rows[:top], rows[top:]
    if rest:
        shown = shown + [
            {
                "name": f"({len(rest)} more)",
                "ms_per_step": sum(r["ms_per_step"] for r in rest),
                "share": sum(r["share"] for r in rest),
            }
        ]
    cells = [[r["name"], f"{r['ms_per_step']:.2f}", f"{100 * r['share']:.1f} %"] for r in shown]
    total = sum(r["ms_per_step"] for r in rows)
    cells.append(["total (summed over threads)", f"{total:.2f}", "100 %"])
    print_table(
        f"Training step x{ratio}, batch {batch_size}: op time per step",
        ["op type" if by == "op" else "layer (pass)", "ms / step", "share"],
        cells,
        styles=[None] * (len(cells) - 1) + ["bold"],
    )
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))


@bench_app.command("serve")
def serve(
    clients: int = typer.Option(16, help="Concurrent clients per measurement."),
    seconds: float = typer.Option(10.0, help="Seconds of requests per protocol and batch."),
    batches: str = typer.Option("1,8", help="LR maps per request, comma-separated."),
    protocols: str = typer.Option("rest,grpc", help="Protocols: rest, grpc or both."),
    model: str = typer.Option(None, help="Serve this model (default: an untrained x8)."),
    batch_maps: BatchMaps = 0,
    json_out: JsonRows = None,
) -> None:
    """REST and gRPC serving under concurrent clients vs in-process inference."""
    from magsr_tf_cli.output import counting_progress

    from magsr_tf.benchmarks.serve import bench_serve

    try:
        sizes = tuple(int(b) for b in batches.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"expected e.g. 1,8. Received: {batches!r}") from exc
    bar, on_progress = counting_progress("bench serve", unit="run")
    try:
        rows = bench_serve(
            clients=clients,
            seconds=seconds,
            batches=sizes,
            protocols=tuple(p.strip() for p in protocols.split(",")),
            model=model,
            batch_maps=batch_maps,
            progress=on_progress,
        )
    finally:
        bar.stop()
    _show("Serving throughput", rows, json_out)


@bench_app.command("real")
def real(
    image: Path = typer.Argument(..., help="A native microscope image (one component)."),
    ratio: int = typer.Option(4, help="Down-sizing ratio (the network needs 4, 8 or 16)."),
    crop: str = typer.Option("512x512", help="Central crop HEIGHTxWIDTH ('none': whole image)."),
    degradation: str = typer.Option("gaussian:1", help="gaussian:SIGMA, box[:WIDTH], psf:F.npy."),
    prior: str = typer.Option("anisotropy", help="Prior: anisotropy or exchange."),
    network: bool = typer.Option(True, "--network/--no-network", help="Train the network too."),
    patches: Patches = 4000,
    epochs: PatchEpochs = 3,
    json_out: JsonRows = None,
    unresolved: Unresolved = "interpolate",
    noise: float = typer.Option(
        0.0, "--noise", help="Gaussian noise sigma added to the LR image (of the [-1, 1] range)."
    ),
) -> None:
    """Degrade a native image, super-resolve it with every method, score against the native."""
    from magsr_tf.benchmarks.real import METHODS, bench_real

    size = None
    if crop.lower() != "none":
        try:
            size = tuple(int(v) for v in crop.lower().split("x"))
        except ValueError as exc:
            raise typer.BadParameter(f"expected HEIGHTxWIDTH. Received: {crop!r}") from exc
    methods = METHODS if network else ("bicubic", "lanczos", "prior", "default")
    rows = bench_real(
        image,
        ratio,
        size,
        methods,
        degradation,
        prior,
        patches,
        epochs,
        unresolved=unresolved,
        noise=noise,
    )
    _show(f"{image.name} x{ratio}: against the native image", rows, json_out)


@bench_app.command("models")
def models(
    models_dir: ModelsFolder = Path("saved_models"),
    batch: int = typer.Option(8, help="LR images per call."),
    seconds: float = typer.Option(3.0, help="Timed seconds per model and runtime."),
    json_out: JsonRows = None,
) -> None:
    """SR images/s of each shipped model: SavedModel and TFLite vs its Keras model."""
    from magsr_tf_cli.output import counting_progress

    from magsr_tf.benchmarks.inference import bench_models

    bar, on_progress = counting_progress("bench models", unit="model")
    try:
        rows = bench_models(models_dir, batch=batch, seconds=seconds, progress=on_progress)
    finally:
        bar.stop()
    _show("SR inference of the shipped models", rows, json_out)


@bench_app.command("memory")
def memory(
    model: str = typer.Option("typeI_x8", help="Model name under --models, or a folder."),
    models_dir: ModelsFolder = Path("saved_models"),
    sizes: str = typer.Option("1024", help="LR edges, comma-separated (1024 at x8: 8192^2 SR)."),
    json_out: JsonRows = None,
) -> None:
    """Peak RSS of `predict` on a large map vs the SR array's size and a tiny map's peak."""
    from magsr_tf_cli.output import counting_progress

    from magsr_tf.benchmarks.inference import bench_memory

    try:
        edges = tuple(int(v) for v in sizes.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"expected e.g. 512,1024. Received: {sizes!r}") from exc
    bar, on_progress = counting_progress("bench memory", unit="run")
    try:
        rows = bench_memory(model, models_dir, edges, progress=on_progress)
    finally:
        bar.stop()
    _show("Peak memory of predict", rows, json_out)


def register(app: typer.Typer) -> None:
    """Add `bench` to `app`."""
    app.add_typer(bench_app, name="bench")
