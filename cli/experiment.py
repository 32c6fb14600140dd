"""`magsr-tf experiment crossfeed|noise`: the paper's Fig. 4 and Figs. 5/6."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import Data, ModelPath, TestImages
from magsr_tf_cli.output import counting_progress, output_console, print_table


def _floats(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(f"--alphas must be comma-separated numbers. Received: {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(
            f"--snapshots must be comma-separated integers. Received: {text!r}"
        ) from None


def register(app: typer.Typer) -> None:
    """Add the `experiment` sub-app (`crossfeed`, `noise`) to `app`."""
    sub = typer.Typer(help="The paper's experiments: cross-feeding (Fig. 4), noise (Figs. 5, 6).")
    app.add_typer(sub, name="experiment")

    @sub.command("crossfeed")
    def crossfeed(
        net_i: Path = typer.Argument(..., help="Network trained on Type I (folder or .keras)."),
        net_ii: Path = typer.Argument(..., help="Network trained on Type II, same ratio."),
        data_i: str = typer.Option("typeI", "--data-i", help="Type I data: typeI or a path."),
        data_ii: str = typer.Option("typeII", "--data-ii", help="Type II data: typeII or a path."),
        out: Path = typer.Option(
            None, "--out", help="Output folder (default: saved_models/experiments/crossfeed_xR)."
        ),
        images: TestImages = 0,
    ) -> None:
        """Feed each network both data types; distributions of MSE, PSNR and Corr (Fig. 4)."""
        from magsr_tf.evaluation.experiments import CrossfeedConfig
        from magsr_tf.evaluation.experiments import crossfeed as run
        from magsr_tf.evaluation.report import crossfeed_table, fmt

        config = CrossfeedConfig(
            net_i=net_i,
            net_ii=net_ii,
            data_i=data_i,
            data_ii=data_ii,
            out=out,
            max_images=images or None,
        )
        console = output_console()
        bar, on_progress = counting_progress("network/data pairs", unit="pair")
        try:
            result = run(config, progress=on_progress)
        finally:
            bar.stop()
        header, rows = crossfeed_table(result)
        print_table(f"Cross-feeding x{result['ratio']}", header, rows, console=console)
        for name, v in result["bilinear_psnr"].items():
            console.print(
                f"Bilinear PSNR on {name}: aligned {fmt(v['aligned']['mean'])} dB, "
                f"paper grid {fmt(v['paper_grid']['mean'])} dB"
            )
        console.print("Ranking by PSNR: " + " > ".join(result["ranking"]))
        console.print("Paper's ranking: " + " > ".join(result["paper_ranking"]))
        console.print(f"JSON: {result['json']}")
        for path in result["figures"]:
            console.print(f"Figure: {path}")

    @sub.command("noise")
    def noise(
        model: ModelPath,
        data: Data = "typeI",
        alphas: str = typer.Option(
            None, "--alphas", help="Comma-separated noise intensities (default by data type)."
        ),
        iterations: int = typer.Option(100, "--iterations", help="Recursive passes."),
        snapshots: str = typer.Option(
            "1,10,20,100", "--snapshots", help="Iterations shown in the sample figure."
        ),
        images: TestImages = 0,
        seed: int = typer.Option(5, "--seed", help="Seed of the noise maps."),
        out: Path = typer.Option(
            None, "--out", help="Output folder (default: MODEL/noise_KIND_xR)."
        ),
    ) -> None:
        """Recursive process with noise S = L2(S + alpha N): Corr per iteration (Figs. 5, 6)."""
        from magsr_tf.evaluation.experiments import NoiseConfig, noise_response
        from magsr_tf.evaluation.report import noise_table

        config = NoiseConfig(
            model=model,
            data=data,
            alphas=_floats(alphas),
            iterations=iterations,
            snapshots=_ints(snapshots),
            max_images=images or None,
            seed=seed,
            out=out,
        )
        console = output_console()
        bar, on_progress = counting_progress("iterations", unit="it")
        try:
            result = noise_response(config, progress=on_progress)
        finally:
            bar.stop()
        header, rows = noise_table(result)
        print_table(
            f"Noise response, {result['kind']} x{result['ratio']}, {result['n_images']} images",
            header,
            rows,
            console=console,
        )
        console.print(f"JSON: {result['json']}")
        for path in result["figures"]:
            console.print(f"Figure: {path}")
