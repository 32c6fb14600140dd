"""PNG figures of the evaluation and the paper's experiments (matplotlib, Agg backend).

Spin maps are drawn with the usual micromagnetic colour wheel
(:func:`spin_rgb`): hue = in-plane angle atan2(S_y, S_x), lightness = S_z
(white +z, black -z). One-component maps (m_z) are grey scale.

Every function writes its file atomically (a temporary name in the same
folder, then ``os.replace``) and returns the path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402

DPI = 110


def spin_rgb(spins) -> np.ndarray:
    """RGB image ``[H, W, 3]`` in [0, 1] of a spin map ``[H, W, C]``.

    Hue encodes the in-plane direction, lightness S_z (HSL-like: S_z = +1 is
    white, -1 black, in-plane spins fully saturated). Vectors are normalized
    first, so un-normalized baselines are shown by direction only.
    """
    s = np.asarray(spins, dtype=np.float64)
    if s.shape[-1] == 1:
        grey = (np.clip(s[..., 0], -1, 1) + 1) / 2
        return np.repeat(grey[..., None], 3, axis=-1)
    s = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)
    hue = (np.arctan2(s[..., 1], s[..., 0]) / (2 * np.pi)) % 1.0
    lightness = (s[..., 2] + 1) / 2
    # HSL -> HSV with full HSL saturation.
    value = lightness + np.minimum(lightness, 1 - lightness)
    saturation = np.where(value > 0, 2 * (1 - lightness / np.maximum(value, 1e-12)), 0.0)
    return hsv_to_rgb(np.stack([hue, np.clip(saturation, 0, 1), np.clip(value, 0, 1)], -1))


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return path


def _show(
    ax, spins, title: str | None = None, box: str | None = None, hr_size: int | None = None
) -> None:
    spins = np.asarray(spins)
    h = spins.shape[0]
    size = hr_size or h
    r = size / h
    # Draw every map in HR pixel coordinates with LR pixel k centred on HR
    # pixel k r (the downsizer's grid), so LR and SR maps overlay correctly.
    extent = (-r / 2, size - r / 2, -r / 2, size - r / 2)
    ax.imshow(spin_rgb(spins), interpolation="nearest", origin="lower", extent=extent)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(-0.5, size - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    if box:
        for side in ax.spines.values():
            side.set_edgecolor(box)
            side.set_linewidth(2.5)


def comparison_figure(
    rows: Sequence[Mapping[str, np.ndarray]],
    path: Path,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
    highlight: str | None = None,
) -> Path:
    """A grid of spin maps like the paper's Figs. 2/3/4a: one row per sample.

    Args:
        rows: per row, column title -> map ``[H, W, C]`` (same titles in every row).
        path: PNG file to write.
        row_labels: text at the left of each row.
        title: figure title.
        highlight: column title drawn with a red frame (the paper's red boxes).
    """
    n_rows = len(rows)
    columns = list(rows[0])
    hr_size = max(np.asarray(m).shape[0] for row in rows for m in row.values())
    fig, axes = plt.subplots(
        n_rows, len(columns), figsize=(1.9 * len(columns), 2.0 * n_rows + 0.4), squeeze=False
    )
    for i, row in enumerate(rows):
        for j, name in enumerate(columns):
            _show(
                axes[i, j],
                row[name],
                name if i == 0 else None,
                "red" if name == highlight else None,
                hr_size,
            )
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def distributions_figure(
    samples: Mapping[str, Mapping[str, np.ndarray]],
    path: Path,
    markers: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> Path:
    """Histograms of per-image metrics for several (network, data) pairs, as Fig. 4b.

    Args:
        samples: pair label -> metric name -> per-image values.
        path: PNG file to write.
        markers: metric name -> label -> value drawn as a vertical dashed line
            (e.g. the bilinear baseline's mean PSNR, the paper's arrows).
        title: figure title.
    """
    metrics = list(next(iter(samples.values())))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        finite = [np.asarray(v[metric])[np.isfinite(v[metric])] for v in samples.values()]
        lo = min((f.min() for f in finite if f.size), default=0.0)
        hi = max((f.max() for f in finite if f.size), default=1.0)
        if markers and metric in markers:
            lo = min(lo, *markers[metric].values())
            hi = max(hi, *markers[metric].values())
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-9, 30)
        for label, values in zip(samples, finite, strict=True):
            ax.hist(values, bins=bins, histtype="step", linewidth=1.6, label=label)
        for k, (label, value) in enumerate((markers or {}).get(metric, {}).items()):
            ax.axvline(value, ls="--", color=f"C{k + 6}", label=label)
        ax.set_xlabel(metric)
        ax.set_ylabel("images")
        if ax is axes[0, 0] or (markers and metric in markers):
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def noise_curves_figure(
    iterations: np.ndarray,
    corr_curves: Mapping[float, np.ndarray],
    max_corr: Mapping[float, float],
    path: Path,
    title: str | None = None,
    inset_alpha: float = 2.0,
) -> Path:
    """Figs. 5b,c / 6b,c: mean Corr per iteration for each alpha, and max Corr against alpha.

    Args:
        iterations: iteration numbers ``[T]`` (1-based).
        corr_curves: alpha -> mean Corr per iteration ``[T]``.
        max_corr: alpha -> maximum over iterations of the mean Corr.
        path: PNG file to write.
        title: figure title.
        inset_alpha: the inset of panel (c) magnifies alpha <= this.
    """
    fig, (ax_b, ax_c) = plt.subplots(1, 2, figsize=(10, 3.8))
    cmap = plt.get_cmap("viridis")
    alphas = sorted(corr_curves)
    for k, alpha in enumerate(alphas):
        ax_b.plot(
            iterations,
            corr_curves[alpha],
            color=cmap(k / max(1, len(alphas) - 1)),
            label=f"alpha={alpha:g}",
        )
    ax_b.set_xlabel("iteration")
    ax_b.set_ylabel("mean Corr with ground truth")
    ax_b.legend(fontsize=6, ncol=2)
    xs = np.array(sorted(max_corr))
    ys = np.array([max_corr[a] for a in xs])
    ax_c.plot(xs, ys, "o-")
    ax_c.set_xlabel("noise intensity alpha")
    ax_c.set_ylabel("max Corr over iterations")
    small = xs <= inset_alpha
    if small.sum() >= 2 and xs.max() > inset_alpha:
        inset = ax_c.inset_axes([0.45, 0.45, 0.5, 0.45])
        inset.plot(xs[small], ys[small], "o-")
        inset.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
