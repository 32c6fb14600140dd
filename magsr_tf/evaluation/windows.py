"""Scoring on windows: ``magsr-tf evaluate MODEL --boundary open``.

A microscope sees a window of a larger film. Each test state's LR map is cut
to its central :data:`WINDOW_FRACTION` (what a window is), every method sees only
the window, as ``predict win.npy --boundary open`` and ``refine win.npy --init
MODEL --boundary open`` would, and the SR is scored over the window less a
:data:`SCORE_RIM` LR-pixel rim against the same states' ground truth, beside the
same command's MSE on the full periodic maps:

- ``sr_open``: the network with the open boundary (:mod:`magsr_tf.ops.windows`);
- ``sr_periodic``: the network as if the window were periodic (the old default);
- ``sr_refine_open``: refine with the open boundary from ``sr_open``;
- ``bicubic_unit``: aligned bicubic (reflect padding), normalized to unit length.

The MSE per LR-pixel ring from the edge shows where the error sits (figure).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from magsr_tf.evaluation.metrics import summarize
from magsr_tf.ops.interpolation import upsample
from magsr_tf.ops.spins import unit_normalize
from magsr_tf.ops.windows import OpenBoundary

log = logging.getLogger(__name__)

WINDOW_FRACTION = 0.75
SCORE_RIM = 1
WINDOW_METHODS = ("sr_open", "sr_periodic", "sr_refine_open", "bicubic_unit")
WINDOW_LABELS = {
    "sr_open": "SR network, open boundary",
    "sr_periodic": "SR network, periodic (wrong for windows)",
    "sr_refine_open": "SR network + refine, open boundary",
    "bicubic_unit": "Bicubic unit (reflect)",
}


def central_window(size: int, fraction: float = WINDOW_FRACTION) -> slice:
    """The central ``fraction`` of ``size`` LR pixels."""
    edge = max(4, int(round(fraction * size)))
    start = (size - edge) // 2
    return slice(start, start + edge)


def window_mse(truth: np.ndarray, sr: np.ndarray, ratio: int, rim: int = SCORE_RIM):
    """Per-image MSE over the window less ``rim`` LR pixels: ``[n]``."""
    m = rim * ratio
    inner = (slice(None), slice(m, sr.shape[1] - m), slice(m, sr.shape[2] - m))
    return np.mean((truth[inner] - sr[inner]) ** 2, axis=(1, 2, 3))


def ring_mse(truth: np.ndarray, sr: np.ndarray, ratio: int) -> list[float]:
    """MSE per ring of LR-pixel width, from the window's edge inwards."""
    h, w = sr.shape[1:3]
    dy = np.minimum(np.arange(h), h - 1 - np.arange(h))
    dx = np.minimum(np.arange(w), w - 1 - np.arange(w))
    ring = np.minimum.outer(dy, dx) // ratio
    err = np.mean((truth - sr) ** 2, axis=-1)
    return [float(err[:, ring == k].mean()) for k in range(int(ring.max()) + 1)]


def score_windows(
    sr_fn,
    hr: np.ndarray,
    lr: np.ndarray,
    ratio: int,
    full_sr: np.ndarray,
    full_refined: np.ndarray | None = None,
    hamiltonian=None,
    refine_steps: int = 0,
) -> dict:
    """Scores of every method on central windows of the test split (module docstring).

    Args:
        sr_fn: the network, ``lr -> sr`` (a :class:`~magsr_tf.inference.noise_switch.NoiseAwareSR`
            or a plain function).
        hr, lr: the test split ``[n, H, W, C]`` and ``[n, h, w, C]``.
        ratio: r.
        full_sr: the network's SR of the full periodic maps (the reference).
        full_refined: refine's SR of the full maps (None: no refine rows).
        hamiltonian: the data's Hamiltonian for refine.
        refine_steps: refine steps (0: no refine rows).
    """
    from magsr_tf.priors.refine import RefineConfig, refine

    rows, cols = central_window(lr.shape[1]), central_window(lr.shape[2])
    window = lr[:, rows, cols]
    hr_rows = slice(rows.start * ratio, rows.stop * ratio)
    hr_cols = slice(cols.start * ratio, cols.stop * ratio)
    truth = hr[:, hr_rows, hr_cols]
    opened = sr_fn.with_boundary("open") if hasattr(sr_fn, "with_boundary") else None
    sr = {
        "sr_open": np.asarray((opened or OpenBoundary(sr_fn, ratio))(window)),
        "sr_periodic": np.asarray(sr_fn(window)),
        "bicubic_unit": unit_normalize(
            upsample(window, ratio, "bicubic", aligned=True, padding="reflect")
        ),
    }
    full = {"sr_open": full_sr, "sr_periodic": full_sr}
    if refine_steps and hamiltonian is not None and full_refined is not None:
        config = RefineConfig(steps=refine_steps, boundary="open", padding="reflect")
        noise = getattr(opened, "estimate", None)
        sigma = None if noise is None else noise.sigma
        kappa = (
            None
            if opened is None or noise is None
            else opened.refine_kappa(sigma, config.noise_kappa)
        )
        sr["sr_refine_open"] = refine(
            window,
            ratio,
            hamiltonian,
            init=sr["sr_open"],
            config=replace(config),
            noise=sigma,
            kappa=kappa,
        ).sr
        full["sr_refine_open"] = full_refined
    result = {
        "window_fraction": WINDOW_FRACTION,
        "score_rim_lr_pixels": SCORE_RIM,
        "window_lr": [rows.stop - rows.start, cols.stop - cols.start],
        "methods": {},
    }
    for name, maps in sr.items():
        errors = window_mse(truth, maps, ratio)
        entry = {"window_mse": summarize(errors), "rings": ring_mse(truth, maps, ratio)}
        if name in full:
            reference = float(np.mean((hr - full[name]) ** 2))
            entry["full_periodic_mse"] = reference
            entry["ratio_to_full"] = float(errors.mean() / reference) if reference > 0 else None
        result["methods"][name] = entry
        log.info("windows %s: MSE %.3g", name, errors.mean())
    return result


def windows_table(result: dict) -> tuple[str, list[str], list[list[str]]]:
    """``(title, header, rows)`` of :func:`score_windows` for the CLI."""
    rows = []
    for name in WINDOW_METHODS:
        entry = result["methods"].get(name)
        if entry is None:
            continue
        full = entry.get("full_periodic_mse")
        ratio = entry.get("ratio_to_full")
        rows.append(
            [
                WINDOW_LABELS[name],
                f"{entry['window_mse']['mean']:.3g}",
                "" if full is None else f"{full:.3g}",
                "" if ratio is None else f"{ratio:.2f}x",
            ]
        )
    h, w = result["window_lr"]
    rim = result["score_rim_lr_pixels"]
    title = f"Windows: central {h}x{w} LR pixels, scored less a {rim}-pixel rim"
    return title, ["method", "window MSE", "full periodic MSE", "window / full"], rows


def rings_figure(result: dict, path: Path, title: str) -> Path:
    """MSE against the distance from the window's edge, per method (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from magsr_tf.io.writers import atomic_path

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name in WINDOW_METHODS:
        entry = result["methods"].get(name)
        if entry is None:
            continue
        rings = entry["rings"]
        ax.semilogy(range(len(rings)), np.maximum(rings, 1e-12), "o-", label=WINDOW_LABELS[name])
        if entry.get("full_periodic_mse") and name != "sr_periodic":
            ax.axhline(entry["full_periodic_mse"], ls=":", lw=0.8, color=ax.lines[-1].get_color())
    ax.set_xlabel("LR pixels from the window's edge")
    ax.set_ylabel("MSE")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
