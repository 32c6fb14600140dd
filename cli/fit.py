"""`magsr-tf fit`: train the SR network on LR images only."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from magsr_tf_cli.options import RatioShort, RefineSteps
from magsr_tf_cli.output import (
    PlainProgress,
    RichProgress,
    output_console,
    print_table,
    progress_bar,
)


class _Display:
    """Turns the library's progress events into progress displays and notes."""

    def __init__(self, console):
        self.console = console
        self.bar: RichProgress | PlainProgress | None = None
        self.gen_task = None
        self.train_task = None
        self.last_val = ""
        self.train_t0 = None

    def _bar(self, unit: str) -> RichProgress | PlainProgress:
        # One display per phase: each has its own unit (configurations, steps).
        if self.bar is not None:
            self.bar.stop()
        self.bar = progress_bar(stderr=False, unit=unit)
        self.bar.start()
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind in ("dataset", "generate_start", "train_start", "evaluate_start"):
            self.close()  # a note ends the live bar before it (Rich would garble both)
        console = self.console
        if kind == "dataset":
            what = " (the quick default dataset)" if event["quick"] else ""
            console.print(f"Dataset: {event['path']}{what}", markup=False, highlight=False)
        elif kind == "generate_start":
            console.print(
                f"No dataset at {event['path']}: generating the default one "
                f"({event['n']} configurations, {event['phases']} extra LR phases each) first."
            )
        elif kind == "generate":
            if self.gen_task is None:
                self.gen_task = self._bar("conf").add_task(
                    "anneal", total=event["total"], completed=event["done"]
                )
            self.bar.update(self.gen_task, completed=event["done"])
        elif kind == "train_start":
            self.train_t0 = time.monotonic()
            cfg = event["config"]
            console.print(
                f"Training on {event['n_train']} LR training configurations: "
                f"{cfg['epochs']} epochs x {cfg['steps_per_epoch']} steps, "
                f"batch {cfg['batch_size']}"
                + (
                    f", energy prior w = {cfg['physics_weight']:g} ({cfg['hamiltonian']['kind']})."
                    if cfg.get("physics_weight")
                    else ", LR loss only."
                )
            )
        elif kind == "step":
            total = event["epochs"] * event["steps"]
            done = (event["epoch"] - 1) * event["steps"] + event["step"]
            if self.train_task is None:
                # The rate counts this run's steps from the start of training.
                self.train_task = self._bar("step").add_task(
                    "train", total=total, rate_from=done - 1, rate_t0=self.train_t0
                )
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


def _show_summary(console, summary: dict) -> None:
    test = summary.get("test")
    if not test:
        return
    rows = []
    energies = test.get("energy_per_spin") or {}
    for name, s in test["methods"].items():
        gain = test["gain_db"].get(name)
        energy = energies.get(name)
        rows.append(
            [
                name,
                f"{s['mse']['mean']:.4g} ± {s['mse']['std']:.2g}",
                f"{s['psnr']['mean']:.2f} ± {s['psnr']['std']:.2f}",
                f"{s['psnr_tables']['mean']:.2f}",
                f"{s['corr']['mean']:.4f}",
                "" if gain is None else f"{gain:+.2f}",
                "" if energy is None else f"{energy:.5f}",
            ]
        )
    print_table(
        f"{summary['name']}: test split ({summary['n_test']} configurations)",
        ["method", "MSE", "PSNR (MAX=2) dB", "PSNR (tables) dB", "Corr", "SR gain dB", "E/N"],
        rows,
        console=console,
    )
    if "energy_truth" in energies:
        console.print(
            f"Ground-truth energy per spin: {energies['energy_truth']:.5f}. "
            "sr_refine / bicubic_refine: reconstruction under the data's Hamiltonian "
            "(magsr-tf refine) from the network's SR / from bicubic."
        )
    console.print(
        f"Trained {summary['train_seconds'] / 60:.1f} min, "
        f"total {summary['total_seconds'] / 60:.1f} min. SavedModel: {summary['saved_model']}"
    )


def fit(
    data: str = typer.Argument(
        ...,
        help="typeI or typeII (quick default dataset data/KIND_quick.h5, made if missing) "
        "or an HDF5 dataset path.",
    ),
    ratio: RatioShort = 8,
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
    refine_steps: RefineSteps = None,
    degradation: str = typer.Option(
        None,
        "--degradation",
        help="Blur of the downsizing: gaussian:SIGMA, box[:WIDTH] or psf:FILE.npy "
        "(default: the sigma = 1 Gaussian that made the datasets).",
    ),
    physics_weight: float = typer.Option(
        None,
        "--physics-weight",
        help="Weight w of the energy prior w*E_H(SR)/N in the loss (0: LR loss only; "
        "default 0.03 when the dataset records its Hamiltonian; docs/physics_prior.md).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace a model folder that holds another run's model or committed files "
        "(its folder of the same options is always continued).",
    ),
    noise: float = typer.Option(
        0.0,
        "--noise",
        help="Input-noise augmentation: Gaussian sigma per component drawn from [0, NOISE] "
        "per image (20% stay clean); the loss still compares with the clean LR image "
        "(docs/noise.md).",
    ),
    init_weights: str = typer.Option(
        None,
        "--init-weights",
        help="Start from this model folder's weights (fine-tuning), e.g. saved_models/typeI_x8.",
    ),
) -> None:
    """Train on LR images only; write the SR model (.keras + TF Serving SavedModel) and scores."""
    from magsr_tf.jobs.fit import FitConfig
    from magsr_tf.jobs.fit import fit as run_fit

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
        physics_weight=physics_weight,
        **({} if refine_steps is None else {"refine_steps": refine_steps}),
        degradation=degradation,
        overwrite=overwrite,
        noise=noise,
        init_weights=init_weights,
    )
    console = output_console()
    display = _Display(console)
    try:  # Ctrl-C: main() prints the one line (with the hint to resume)
        summary = run_fit(config, progress=display)
    finally:
        display.close()
    _show_summary(console, summary)


def calibrate_noise(
    model: Path = typer.Argument(..., help="Trained model folder (saved_models/NAME)."),
    data: str = typer.Option(..., "--data", help="The HDF5 dataset it was trained on."),
) -> None:
    """Measure the model's LR residual against the noise level on its training images
    (noise_calibration.json, used by predict/refine --noise auto; fit writes it itself)."""
    from magsr_tf.jobs.calibrate import calibrate_model

    path = calibrate_model(model, data)
    output_console().print(f"Noise calibration: {path}", markup=False)


def register(app: typer.Typer) -> None:
    """Add `fit` and `calibrate-noise` to `app`."""
    app.command("fit")(fit)
    app.command("calibrate-noise")(calibrate_noise)
