"""Scoring on noisy LR input: ``magsr-tf evaluate MODEL --noise 0.02,0.05,0.1``.

The test split's LR images get Gaussian noise of each sigma per component
(:func:`magsr_tf.ops.noise.add_noise`, seeded by :data:`EVAL_NOISE_SEED`), and
every method sees only the noisy map, as a user's command would:

- ``sr``: the network (``magsr-tf predict MODEL``);
- ``sr_refine``: the noise-aware refine from the network's SR with the noise
  level estimated from the map (``magsr-tf refine --init MODEL``);
- ``bicubic`` and ``bicubic_unit``: aligned bicubic, raw and normalized to unit
  length (the honest interpolation baseline for spins).

Beside the scores: the estimated sigma against the true one. The figure
plots MSE against sigma per method.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from magsr_tf.evaluation.metrics import per_image, summarize
from magsr_tf.inference.apply import apply_model
from magsr_tf.inference.noise_level import estimate_noise
from magsr_tf.inference.noise_switch import NoiseAwareSR
from magsr_tf.ops.interpolation import upsample
from magsr_tf.ops.noise import add_noise
from magsr_tf.ops.spins import unit_normalize

log = logging.getLogger(__name__)

EVAL_NOISE_SEED = 4242
NOISY_METHODS = ("sr", "sr_refine", "bicubic", "bicubic_unit")
NOISY_LABELS = {
    "sr": "SR network",
    "sr_refine": "SR network + refine",
    "bicubic": "Bicubic",
    "bicubic_unit": "Bicubic, unit length",
}


def noisy_lr(lr: np.ndarray, sigma: float, seed: int = EVAL_NOISE_SEED) -> np.ndarray:
    """The evaluation's noisy copy of the LR test images at ``sigma`` (reproducible)."""
    rng = np.random.default_rng([seed, int(round(sigma * 1e6))])
    return add_noise(lr, sigma, rng)


def score_noisy(
    sr_model,
    hr: np.ndarray,
    lr: np.ndarray,
    ratio: int,
    sigmas,
    padding: str = "periodic",
    hamiltonian=None,
    refine_steps: int = 0,
    calibration: dict | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Scores every method on noisy copies of the LR test images.

    Returns:
        ``{"sigmas": [...], "rows": [{"sigma", "estimate": {...}, "metrics":
        {method: {metric: {mean, std, n}}}, "gain_db": {...}}], "labels": {...}}``;
        ``gain_db`` is the network's (and the refine's) PSNR gain over raw and
        unit-length bicubic.
    """
    rows = []
    for sigma in sigmas:
        x = noisy_lr(lr, float(sigma)) if sigma > 0 else np.asarray(lr, np.float32)
        companion_share = 0.0
        if isinstance(sr_model, NoiseAwareSR):  # the clean network or its noisy companion
            sr = sr_model(x)
            est = sr_model.estimate or estimate_noise(x, ratio)
            companion_share = float(np.mean(sr_model.used_companion))
        else:
            sr = apply_model(sr_model, x, batch_size)
            est = estimate_noise(x, ratio, sr, calibration, padding)
        bicubic = upsample(x, ratio, "bicubic", aligned=True, padding=padding)
        maps = {"sr": sr, "bicubic": bicubic, "bicubic_unit": unit_normalize(bicubic)}
        if refine_steps and hamiltonian is not None and x.shape[-1] == 3:
            from magsr_tf.priors.refine import RefineConfig, refine

            config = RefineConfig(steps=refine_steps)
            kappa = None
            if isinstance(sr_model, NoiseAwareSR):
                kappa = sr_model.refine_kappa(est.sigma, config.noise_kappa)
            maps["sr_refine"] = refine(
                x, ratio, hamiltonian, init=sr, config=config, noise=est.sigma, kappa=kappa
            ).sr
        metrics = {
            name: {k: summarize(v) for k, v in per_image(hr, m).items()} for name, m in maps.items()
        }
        psnr = {name: metrics[name]["psnr"]["mean"] for name in metrics}
        gain = {
            f"{a}_over_{b}": psnr[a] - psnr[b]
            for a in ("sr", "sr_refine")
            if a in psnr
            for b in ("bicubic", "bicubic_unit")
        }
        rel = np.abs(est.sigma / sigma - 1) if sigma > 0 else None
        estimate = {
            "method": est.method,
            "mean": float(np.mean(est.sigma)),
            "median": float(np.median(est.sigma)),
            "max_relative_error": None if rel is None else float(np.max(rel)),
            "median_relative_error": None if rel is None else float(np.median(rel)),
        }
        log.info(
            "noise %.3g: estimated %.4g; SR MSE %.3g",
            sigma,
            estimate["mean"],
            metrics["sr"]["mse"]["mean"],
        )
        rows.append(
            {
                "sigma": float(sigma),
                "estimate": estimate,
                "companion_share": companion_share,
                "metrics": metrics,
                "gain_db": gain,
            }
        )
    return {
        "sigmas": [float(s) for s in sigmas],
        "seed": EVAL_NOISE_SEED,
        "noise_model": "Gaussian per component, vectors longer than 1 shortened to 1",
        "labels": {m: NOISY_LABELS[m] for m in NOISY_METHODS},
        "rows": rows,
    }


def noise_figure(noisy: dict, path: Path, title: str) -> Path:
    """MSE against the LR noise level, one line per method (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from magsr_tf.io.writers import write_figure

    fig, ax = plt.subplots(figsize=(5.2, 3.8), constrained_layout=True)
    sigmas = [row["sigma"] for row in noisy["rows"]]
    for method in NOISY_METHODS:
        ys = [row["metrics"].get(method, {}).get("mse", {}).get("mean") for row in noisy["rows"]]
        if all(y is not None for y in ys):
            ax.plot(sigmas, ys, "o-", label=noisy["labels"][method])
    ax.set_yscale("log")
    ax.set_xlabel("LR noise sigma per component")
    ax.set_ylabel("MSE against ground truth")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return write_figure(path, fig, dpi=130)


def noisy_table(noisy: dict) -> tuple[str, list[str], list[list[str]]]:
    """``(title, header, rows)`` of the noisy rows: MSE per method and sigma estimated vs true."""
    header = ["sigma", "sigma estimated", "noisy net", *(noisy["labels"][m] for m in NOISY_METHODS)]
    header += ["SR gain over unit bicubic dB"]
    rows = []
    for row in noisy["rows"]:
        est = row["estimate"]
        share = row.get("companion_share", 0.0)
        cells = [f"{row['sigma']:g}", f"{est['mean']:.4f}", f"{100 * share:.0f}%"]
        for method in NOISY_METHODS:
            mse = row["metrics"].get(method, {}).get("mse")
            cells.append("-" if mse is None else f"{mse['mean']:.4g}")
        best = row["gain_db"].get(
            "sr_refine_over_bicubic_unit", row["gain_db"]["sr_over_bicubic_unit"]
        )
        cells.append(f"{row['gain_db']['sr_over_bicubic_unit']:+.2f} ({best:+.2f} with refine)")
        rows.append(cells)
    return "Noisy LR input (MSE; sigma per component)", header, rows
