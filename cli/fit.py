"""`magsr-tf fit`: train the SR network on LR images only."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console()


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


class _Display:
    """Turns the library's progress events into Rich progress bars."""

    def __init__(self, bar: Progress):
        self.bar = bar
        self.gen_task = None
        self.train_task = None
        self.last_val = ""

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "generate_start":
            console.print(
                f"No dataset at {event['path']}: generating the default one "
                f"({event['n']} configurations, {event['phases']} extra LR phases each) first."
            )
        elif kind == "generate":
            if self.gen_task is None:
                self.gen_task = self.bar.add_task("anneal", total=event["total"], info="")
            self.bar.update(self.gen_task, completed=event["done"])
        elif kind == "train_start":
            cfg = event["config"]
            console.print(
                f"Training on {event['n_train']} LR training configurations: "
                f"{cfg['epochs']} epochs x {cfg['steps_per_epoch']} steps, "
                f"batch {cfg['batch_size']}."
            )
        elif kind == "step":
            total = event["epochs"] * event["steps"]
            done = (event["epoch"] - 1) * event["steps"] + event["step"]
            if self.train_task is None:
                self.train_task = self.bar.add_task("train", total=total, info="")
            info = (
                f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.2e}{self.last_val}"
            )
            self.bar.update(self.train_task, completed=done, info=info)
        elif kind == "epoch":
            if "val_sr_mse" in event:
                self.last_val = (
                    f" | SR val MSE {event['val_sr_mse']:.4f} Corr {event['val_sr_corr']:.3f}"
                )
        elif kind == "evaluate_start":
            console.print(f"Scoring on the {event['n_test']} test configurations ...")


def _show_summary(summary: dict) -> None:
    test = summary.get("test")
    if not test:
        return
    table = Table(title=f"{summary['name']}: test split ({summary['n_test']} configurations)")
    for col in ("method", "MSE", "PSNR (MAX=2) dB", "PSNR (tables) dB", "Corr", "SR gain dB"):
        table.add_column(col, no_wrap=col == "method")
    for name, s in test["methods"].items():
        gain = test["gain_db"].get(name)
        table.add_row(
            name,
            f"{s['mse']['mean']:.4g} ± {s['mse']['std']:.2g}",
            f"{s['psnr']['mean']:.2f} ± {s['psnr']['std']:.2f}",
            f"{s['psnr_tables']['mean']:.2f}",
            f"{s['corr']['mean']:.4f}",
            "" if gain is None else f"{gain:+.2f}",
        )
    console.print(table)
    console.print(
        f"Trained {summary['train_seconds'] / 60:.1f} min, "
        f"total {summary['total_seconds'] / 60:.1f} min. SavedModel: {summary['saved_model']}"
    )


def fit(
    data: str = typer.Argument(..., help="typeI, typeII (data/KIND.h5) or an HDF5 dataset path."),
    ratio: int = typer.Option(8, "--ratio", "-r", help="Super-resolution ratio: 4, 8 or 16."),
    epochs: int = typer.Option(None, help="Epochs (default: the quick-run default)."),
    steps_per_epoch: int = typer.Option(None, help="Steps per epoch (default: quick run)."),
    batch_size: int = typer.Option(32, help="Global batch size."),
    lr: float = typer.Option(
        0.003, "--lr", help="Adam learning rate (the paper: 0.01; see docs/training.md)."
    ),
    schedule: str = typer.Option(
        "warmup_cosine", help="constant, cosine, warmup_cosine or exponential."
    ),
    out: Path = typer.Option(None, help="Model folder (default: saved_models/NAME_xR)."),
    strategy: str = typer.Option("auto", help="auto, default, mirrored or multiworker."),
    seed: int = typer.Option(0, help="Training seed."),
) -> None:
    """Train on LR images only; write the SR model (.keras + TF Serving SavedModel) and scores."""
    from magsr_tf.fit import FitConfig
    from magsr_tf.fit import fit as run_fit

    config = FitConfig(
        data=data,
        ratio=ratio,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        batch_size=batch_size,
        learning_rate=lr,
        schedule=schedule,
        out=out,
        strategy=strategy,
        seed=seed,
    )
    try:
        with _progress_bar() as bar:
            summary = run_fit(config, progress=_Display(bar))
    except KeyboardInterrupt:
        console.print("Interrupted: run the same command again to resume from the last epoch.")
        raise typer.Exit(130) from None
    _show_summary(summary)


def register(app: typer.Typer) -> None:
    """Add `fit` to `app`."""
    app.command("fit")(fit)
