"""`magsr-tf fit-image IMAGE [IMAGE_Y IMAGE_Z]`: train on one microscope image, super-resolve it."""

from __future__ import annotations

from pathlib import Path

import typer
from magsr_tf_cli.options import (
    PatchEpochs,
    Patches,
    Ratio,
    TrainBatchSize,
    Unresolved,
    ValueRange,
    parse_pair,
)
from magsr_tf_cli.output import output_console, print_table, progress_bar


def padding_for_boundary(padding: str | None, boundary: str | None) -> str:
    """fit-image's padding from ``--padding`` and ``--boundary`` (open: reflect)."""
    from magsr_tf.errors import MagsrError
    from magsr_tf.ops.windows import check_boundary

    check_boundary(boundary)
    implied = {"open": "reflect", "periodic": "periodic", None: None}[boundary]
    if padding is not None and implied is not None and padding != implied:
        raise MagsrError(
            f"--padding {padding} contradicts --boundary {boundary} (open means reflect)"
        )
    return padding or implied or "reflect"


def fit_image(
    images: list[Path] = typer.Argument(
        ...,
        help="One image (m_z) or three (m_x m_y m_z): PNG, TIFF (pages = components), "
        "JPEG, Gwyddion .gwy, DigitalMicrograph .dm3/.dm4, Igor .ibw.",
    ),
    ratio: Ratio = 8,
    patch: int = typer.Option(16, "--patch", help="LR patch edge in pixels."),
    patches: Patches = 24000,
    padding: str = typer.Option(
        None, "--padding", help="reflect (images, the default) or periodic; as --boundary."
    ),
    boundary: str = typer.Option(
        None,
        "--boundary",
        help="open (a window of a larger film, the default for pictures: the network and the "
        "interpolations pad by reflection) or periodic (a whole periodic lattice).",
    ),
    epochs: PatchEpochs = 3,
    batch_size: TrainBatchSize = 32,
    seed: int = typer.Option(0, "--seed", help="Seed of patches and training."),
    out: Path = typer.Option(
        None, "--out", help="Model folder (default: saved_models/<image>_x<ratio>)."
    ),
    degrade: bool = typer.Option(
        False,
        "--degrade",
        help="Fair check: take the image as the native truth, fit on its own downsizing by "
        "--ratio and score the SR against it.",
    ),
    crop: str = typer.Option(None, "--crop", help="Central crop HEIGHTxWIDTH first."),
    value_range: ValueRange = None,
    residual: bool = typer.Option(
        None,
        "--residual/--no-residual",
        help="Add the aligned bicubic as a global skip (default: on for one image, off for three).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model."),
    degradation: str = typer.Option(
        "gaussian:1",
        "--degradation",
        help="Blur that made the LR image: gaussian:SIGMA, gaussian:auto (estimate SIGMA from "
        "the image), box[:WIDTH] or psf:FILE.npy (native pixels).",
    ),
    prior: str = typer.Option(
        "auto",
        "--prior",
        help="auto (default: the best measured method, chosen from the LR image: anisotropy "
        "prior, or aligned Lanczos-3/bicubic where the LR grid does not resolve the domains), "
        "none (the network alone), exchange or anisotropy.",
    ),
    anisotropy: float = typer.Option(
        None, "--anisotropy", help="K/J of the prior (default: chosen from the LR image)."
    ),
    network: bool = typer.Option(
        None,
        "--network/--no-network",
        help="Train the patch network (with a prior: the prior refines its SR). Default: only "
        "with --prior none.",
    ),
    unresolved: Unresolved = "interpolate",
    noise: str = typer.Option(
        "auto",
        "--noise",
        help="LR noise sigma (of the [-1, 1] range) or auto (estimated from the LR image); "
        "sets the prior's data weight.",
    ),
) -> None:
    """Train on random patches of a microscope image and write its SR (paper Fig. 7)."""
    from magsr_tf.errors import MagsrError
    from magsr_tf.jobs.fit_image import FitImageConfig
    from magsr_tf.jobs.fit_image import fit_image as run

    noise_sigma = None
    if noise.strip().lower() != "auto":
        try:
            noise_sigma = float(noise)
        except ValueError as exc:
            raise MagsrError(f"--noise expects SIGMA or auto. Received: {noise!r}") from exc

    padding = padding_for_boundary(padding, boundary)
    config = FitImageConfig(
        images=tuple(images),
        ratio=ratio,
        patch=patch,
        patches=patches,
        padding=padding,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        out_dir=out,
        degrade=degrade,
        crop=parse_pair(crop, "x", "HEIGHTxWIDTH", int),
        value_range=parse_pair(value_range, ",", "LOW,HIGH"),
        residual=residual,
        overwrite=overwrite,
        degradation=degradation,
        prior=prior,
        anisotropy=anisotropy,
        network=network,
        unresolved=unresolved,
        noise=noise_sigma,
    )
    console = output_console()
    with progress_bar(stderr=False, unit="step") as bar:
        task = bar.add_task("train", total=None)

        def progress(event: dict) -> None:
            if event.get("kind") == "step":
                total = event["epochs"] * event["steps"]
                done = (event["epoch"] - 1) * event["steps"] + event["step"]
                info = f"epoch {event['epoch']}/{event['epochs']} loss {event['loss']:.2e}"
                bar.update(task, total=total, completed=done, info=info)
            elif event.get("kind") == "prior":
                info = f"prior, L-BFGS iteration {event['iteration']}"
                bar.update(task, total=event["max_iter"], completed=event["iteration"], info=info)

        result = run(config, progress=progress)
    for role, path in result.files.items():
        console.print(f"{role}: {path}", markup=False)
    default = result.prior.get("default")
    if default:
        console.print(f"method: {result.prior['method']} ({default['reason']})", markup=False)
    noise_info = result.prior.get("noise")
    if noise_info:
        console.print(
            f"noise: sigma {noise_info['sigma']:.4g} ({noise_info['method']}), prior data weight "
            f"{noise_info['data_weight']:.4g}",
            markup=False,
        )
    # Where the LR grid did not resolve the domains the prior's map is the bicubic one.
    fallback = result.prior.get("method") == "bicubic"

    def label(method: str) -> str:
        return f"{method} (unresolved: bicubic)" if fallback and "prior" in method else method

    if result.metrics:
        print_table(
            f"Against the native image (x{ratio}, fitted on its downsizing)",
            ["method", "MSE", "PSNR (MAX=2) dB", "Pearson r"],
            [
                [label(method), f"{m['mse']:.4g}", f"{m['psnr_db']:.2f}", f"{m['pearson_r']:.4f}"]
                for method, m in result.metrics.items()
            ],
            console=console,
        )


def register(app: typer.Typer) -> None:
    """Add `fit-image` to `app`."""
    app.command("fit-image")(fit_image)
