"""`magsr-tf bench ...`: throughput benchmarks (print figures, never assert)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

bench_app = typer.Typer(help="Benchmarks: print throughput and ratios to in-run references.")


def _show(title: str, rows: list[dict], json_out: Path | None) -> None:
    # One column per measured configuration, one row per figure: the figures
    # are many, the configurations few, so this stays readable in 80 columns.
    table = Table(title=title)
    table.add_column("", no_wrap=True)
    for i, _ in enumerate(rows):
        table.add_column(f"#{i + 1}", justify="right")
    keys = list(rows[0]) if rows else []
    for key in keys:
        cells = []
        for row in rows:
            v = row.get(key, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        table.add_row(key, *cells)
    Console().print(table)
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2))


@bench_app.command("anneal")
def anneal(
    lattice: int = typer.Option(128, help="Lattice size L."),
    sweeps: int = typer.Option(0, help="Sweeps per measurement (0: the benchmark's default)."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the rows as JSON."),
) -> None:
    """Spin updates per second for Type I and Type II vs a plain NumPy Metropolis."""
    from magsr_tf.benchmarks.anneal import bench_anneal

    rows = bench_anneal(lattice=lattice, sweeps=sweeps or None, workers=workers or None)
    _show("Annealer throughput", rows, json_out)


@bench_app.command("train")
def train(
    seconds: float = typer.Option(20.0, help="Seconds of timed training per ratio."),
    batch_size: int = typer.Option(0, help="Batch size (0: the training default)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the rows as JSON."),
) -> None:
    """Training throughput (LR images/s) for x4, x8, x16 and the fraction of conv FLOP/s."""
    from magsr_tf.benchmarks.train import bench_train

    rows = bench_train(seconds=seconds, batch_size=batch_size or None)
    _show("Training throughput", rows, json_out)


def register(app: typer.Typer) -> None:
    """Add `bench` to `app`."""
    app.add_typer(bench_app, name="bench")
