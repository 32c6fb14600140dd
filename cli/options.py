"""Command-line options that several ``magsr-tf`` commands share.

Each is an ``Annotated`` type holding the flag and its help text once; a command
sets its own default in its signature (``out: OutFolder = Path("refined")``),
so the same option may default differently per command. Options of a single
command stay in that command's module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_RATIO_HELP = "Super-resolution ratio: 4, 8 or 16."

# Inputs and outputs.
ModelPath = Annotated[Path, typer.Argument(help="Model folder (saved_models/NAME) or .keras file.")]
Data = Annotated[str, typer.Option("--data", help="typeI, typeII or a dataset path.")]
TestImages = Annotated[int, typer.Option("--images", help="Use the first N test images (0: all).")]
OutFolder = Annotated[Path, typer.Option("--out", help="Output folder.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
RootFolder = Annotated[Path, typer.Option("--root", help="Models root folder.")]
ModelsFolder = Annotated[Path, typer.Option("--models", help="Models root folder.")]
JsonRows = Annotated[Path, typer.Option("--json", help="Also write the rows as JSON.")]
ValueRange = Annotated[
    str,
    typer.Option(
        "--range",
        help="Pixel values of m=-1 and m=+1 for pictures, 'LOW,HIGH' (default: percentiles).",
    ),
]

# Models, training and super-resolution.
Ratio = Annotated[int, typer.Option("--ratio", help=_RATIO_HELP)]
# `fit` has always taken the short form too; the others never did.
RatioShort = Annotated[int, typer.Option("--ratio", "-r", help=_RATIO_HELP)]
TrainBatchSize = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
InferenceBatchSize = Annotated[
    int, typer.Option("--batch-size", help="Maps per model call (inference batch size).")
]
RefineSteps = Annotated[
    int,
    typer.Option(
        "--refine-steps",
        help="Steps of the 'SR network + refine' and 'bicubic + refine' rows "
        "(default: refine's; 0: skip them).",
    ),
]

# Noise level of the LR input, per component ('auto': estimated from the map).
Noise = Annotated[
    str,
    typer.Option(
        "--noise",
        help="LR noise sigma per component, or 'auto' (estimated from each map with the "
        "model's LR residual; docs/noise.md).",
    ),
]

# Single-image fits (`fit-image`, `bench real`).
# Border of the input: a whole periodic lattice or a window of a larger texture.
Boundary = Annotated[
    str,
    typer.Option(
        "--boundary",
        help="periodic (a whole simulated lattice) or open (a window of a larger film: "
        "extended by a continuation of its texture; docs/windows.md). Default: open for "
        "pictures and microscope files, periodic for .npy and .h5.",
    ),
]
Patches = Annotated[int, typer.Option("--patches", help="Number of random LR patches.")]
PatchEpochs = Annotated[int, typer.Option("--epochs", help="Epochs over the patches.")]
Unresolved = Annotated[
    str,
    typer.Option(
        "--unresolved",
        help="With a prior, when the LR grid does not resolve the domains: interpolate "
        "(aligned bicubic, the default) or prior (reconstruct anyway).",
    ),
]

# Annealing.
Lattice = Annotated[int, typer.Option("--lattice", help="Lattice size L (even).")]
Workers = Annotated[int, typer.Option("--workers", help="Annealing processes (0: one per core).")]

# Serving.
BatchMaps = Annotated[
    int,
    typer.Option(
        "--batch-maps",
        help="Merge concurrent small requests into model calls of up to N maps (0: off).",
    ),
]


def parse_pair(value: str | None, sep: str, what: str, cast=float):
    """Splits an option value such as ``'LOW,HIGH'`` or ``'HxW'`` into two numbers.

    Args:
        value: the option's text, or None when the option is not given.
        sep: the separator between the two numbers (``","``, ``"x"``).
        what: the expected form, for the error message (``"LOW,HIGH"``).
        cast: the type of both numbers.

    Returns:
        ``(first, second)``, or None when ``value`` is None.

    Raises:
        typer.BadParameter: ``value`` is not two numbers separated by ``sep``.
    """
    if value is None:
        return None
    try:
        first, second = (cast(v) for v in value.lower().split(sep))
    except ValueError as exc:
        raise typer.BadParameter(f"expected {what}. Received: {value!r}") from exc
    return first, second
