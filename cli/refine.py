"""`magsr-tf refine INPUT...`: SR under the data's Hamiltonian, consistent with the LR input."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import Boundary, Noise, OutFolder, Overwrite, RootFolder
from magsr_tf_cli.output import output_console, print_table, progress_bar


def refine(
    inputs: list[str] = typer.Argument(
        ..., help="LR inputs: .npy files or FILE.h5:DATASET[a:b] (e.g. data/x.h5:lr/x8[0:4])."
    ),
    ratio: int = typer.Option(
        None, "--ratio", "-r", help="Super-resolution ratio (default: the --init model's)."
    ),
    hamiltonian: str = typer.Option(
        None,
        "--hamiltonian",
        help="typeI, typeII or a JSON file (default: the --init model's or the dataset's).",
    ),
    init: str = typer.Option(
        "bicubic", "--init", help="Starting SR: 'bicubic' or a model folder / name."
    ),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps (default: measured)."),
    step_size: float = typer.Option(None, "--lr", help="Adam step size."),
    weight: float = typer.Option(None, "--weight", help="Weight mu of the LR misfit."),
    constraint: str = typer.Option("lagrangian", help="lagrangian or penalty."),
    batch_size: int = typer.Option(None, "--batch-size", help="Maps refined together."),
    dtype: str = typer.Option("float32", help="float32 or float64."),
    degradation: str = typer.Option(
        None,
        "--degradation",
        help="Blur that made the LR input: gaussian:SIGMA or box[:WIDTH] (default: sigma 1).",
    ),
    out: OutFolder = Path("refined"),
    root: RootFolder = Path("saved_models"),
    overwrite: Overwrite = False,
    noise: Noise = "auto",
    boundary: Boundary = None,
) -> None:
    """Reconstruct SR spin maps under the Hamiltonian; writes NAME_sr.npy/.png, NAME_refine.json.

    Noisy LR maps (noise level estimated, or --noise) are fitted with a likelihood
    weight from their sigma instead of exactly (docs/noise.md)."""
    from magsr_tf.inference.noise_level import parse_noise
    from magsr_tf.jobs.refine import RefineJob, run_refine
    from magsr_tf.priors.refine import RefineConfig

    options = {
        "steps": steps,
        "learning_rate": step_size,
        "weight": weight,
        "batch_size": batch_size,
    }
    config = RefineConfig(
        constraint=constraint,
        dtype=dtype,
        degradation=degradation,
        **{k: v for k, v in options.items() if v is not None},
    )
    job = RefineJob(
        inputs=tuple(inputs),
        ratio=ratio,
        hamiltonian=hamiltonian,
        init=init,
        out_dir=out,
        config=config,
        overwrite=overwrite,
        models_root=root,
        noise=parse_noise(noise),
        boundary=boundary,
    )
    bar = progress_bar(unit="map")
    task = bar.add_task("refine", total=None)

    def on_progress(event: dict) -> None:
        if not bar.is_started:
            bar.start()
        bar.update(
            task,
            completed=event["done"],
            total=event["total"],
            info=f"step {event['step']}/{event['steps']}, E/N {event['energy']:.5f}, "
            f"LR misfit {event['misfit']:.1e}",
        )

    try:
        outputs = run_refine(job, progress=on_progress)
    finally:
        bar.stop()
    rows = [
        [
            o.name,
            str(len(o.result.sr)),
            f"{o.result.energy_per_spin.mean():.5f}",
            f"{o.result.lr_misfit.mean():.2e}",
            "-" if o.noise is None else f"{o.noise.sigma.mean():.3g}",
            f"{o.result.seconds:.1f}",
            str(o.files[0]),
        ]
        for o in outputs
    ]
    print_table(
        "refine",
        ["input", "maps", "E/N", "LR misfit", "LR noise", "seconds", "output"],
        rows,
        console=output_console(),
    )


def register(app: typer.Typer) -> None:
    """Add `refine` to `app`."""
    app.command("refine")(refine)
