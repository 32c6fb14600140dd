"""`magsr-tf evaluate MODEL --data ...` and `magsr-tf report`: Tables 1/2 and one report."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import (
    Data,
    InferenceBatchSize,
    ModelPath,
    ModelsFolder,
    Overwrite,
    RefineSteps,
    TestImages,
)
from magsr_tf_cli.output import counting_progress, output_console, print_table
from rich.console import Console


def print_tables(console: Console, tables) -> None:
    """Prints ``(title, header, rows)`` tables (full width when not on a terminal)."""
    for title, header, rows in tables:
        print_table(title, header, rows, console=console)


def parse_levels(text: str | None) -> tuple[float, ...]:
    """``--noise 0.02,0.05,0.1`` -> (0.02, 0.05, 0.1); a bad list is a one-line error."""
    from magsr_tf.errors import MagsrError

    if not text:
        return ()
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise MagsrError(
            f"--noise must be a comma-separated list of sigmas. Received: {text!r}"
        ) from None


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `report` to `app`."""

    @app.command("evaluate")
    def evaluate(
        model: ModelPath,
        data: Data = "typeI",
        json_out: Path = typer.Option(
            None, "--json", help="JSON of every number (default: MODEL/evaluation_KIND_xR.json)."
        ),
        figures: Path = typer.Option(
            None, "--figures", help="Folder for PNG figures (default: MODEL/figures)."
        ),
        images: TestImages = 0,
        batch_size: InferenceBatchSize = 32,
        physical: bool = typer.Option(
            True, "--physical/--no-physical", help="Energy, S(q) peak, Q, domain walls."
        ),
        refine_steps: RefineSteps = None,
        overwrite: Overwrite = False,
        noise: str = typer.Option(
            None,
            "--noise",
            help="Also score noisy LR input at these sigmas per component, e.g. 0.02,0.05,0.1 "
            "(network, network + refine, bicubic, unit bicubic; docs/noise.md).",
        ),
        boundary: str = typer.Option(
            "periodic",
            "--boundary",
            help="open: also score central 3/4 windows of the test maps with the open "
            "boundary (predict/refine --boundary open; docs/windows.md).",
        ),
    ) -> None:
        """Score an SR model against ground truth and interpolation, as the paper's Tables 1/2."""
        from magsr_tf.evaluation.evaluate import EvaluateConfig
        from magsr_tf.evaluation.evaluate import evaluate as run
        from magsr_tf.evaluation.report import LEGEND, evaluation_tables

        config = EvaluateConfig(
            model=model,
            data=data,
            json_out=json_out,
            figures=figures,
            max_images=images or None,
            batch_size=batch_size,
            physical=physical,
            overwrite=overwrite,
            noise=parse_levels(noise),
            boundary=boundary,
            **({} if refine_steps is None else {"refine_steps": refine_steps}),
        )
        console = output_console()
        bar, on_progress = counting_progress("super-resolving", unit="img")
        try:
            result = run(config, progress=on_progress)
        finally:
            bar.stop()
        console.print(
            f"[bold]{result['kind']} x{result['ratio']}[/], {result['n_images']} test images "
            f"of {result['data']}"
        )
        print_tables(console, evaluation_tables(result))
        if "noisy" in result:
            from magsr_tf.evaluation.noisy import noisy_table

            print_tables(console, [noisy_table(result["noisy"])])
        if "windows" in result:
            from magsr_tf.evaluation.windows import windows_table

            print_tables(console, [windows_table(result["windows"])])
        console.print(LEGEND, style="dim")
        best = result["gains_db"].get("over_best_aligned")
        if best:
            console.print(
                f"SR gain over the best aligned baseline ({best['method']}): "
                f"{best['db']:+.2f} dB (PSNR, MAX = 2)"
            )
        console.print(f"JSON: {result['json']}")
        for path in result["figures"]:
            console.print(f"Figure: {path}")

    @app.command("report")
    def report(
        models: ModelsFolder = Path("saved_models"),
        out: Path = typer.Option(
            None,
            "--out",
            help="Markdown file (default: MODELS/report.md, or MODELS/tables.md with --tables).",
        ),
        tables: bool = typer.Option(
            False,
            "--tables",
            help="Only Tables 1-2 of the shipped models next to the paper (for the README).",
        ),
    ) -> None:
        """Collect every model's tables and figures under saved_models/ into one Markdown file.

        It opens with Tables 1-2 (Type I, Type II) of the shipped models
        (typeI_x4 ... typeII_x16) beside the paper's numbers.
        """
        from magsr_tf.evaluation.report import ReportConfig, build_report

        result = build_report(ReportConfig(models_dir=models, out=out, tables_only=tables))
        console = output_console()
        if tables:
            console.print(
                f"Tables 1-2 of {len(result['models'])} model(s): {result['report']}",
                markup=False,
            )
            if result.get("partial"):
                console.print(
                    "Partial runs (only part of the test split; marked in the tables): "
                    + ", ".join(result["partial"]),
                    markup=False,
                )
            return
        console.print(
            f"Report of {len(result['models'])} model(s) and {len(result['experiments'])} "
            f"experiment(s): {result['report']}"
        )
