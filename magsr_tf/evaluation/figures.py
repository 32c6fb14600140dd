"""PNG figures of the evaluation and the paper's experiments (matplotlib, Agg backend).

Spin maps are drawn with the usual micromagnetic colour wheel
(:func:`spin_rgb`): hue = in-plane angle atan2(S_y, S_x), lightness = S_z
(white +z, black -z). One-component maps (m_z) are grey scale.

Every function writes its file atomically (a temporary name in the same
folder, then ``os.replace``) and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import hsv_to_rgb  # noqa: E402

from magsr_tf.io.writers import write_figure  # noqa: E402

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
    return write_figure(path, fig, dpi=DPI, bbox_inches="tight")


def _show(
    ax,
    spins,
    title: str | None = None,
    box: str | None = None,
    hr_size: int | None = None,
    origin: str = "lower",
) -> None:
    spins = np.asarray(spins)
    h = spins.shape[0]
    size = hr_size or h
    r = size / h
    # Draw every map in HR pixel coordinates with LR pixel k centred on HR
    # pixel k r (the downsizer's grid), so LR and SR maps overlay correctly.
    bottom, top = (-r / 2, size - r / 2) if origin == "lower" else (size - r / 2, -r / 2)
    extent = (-r / 2, size - r / 2, bottom, top)
    ax.imshow(spin_rgb(spins), interpolation="nearest", origin=origin, extent=extent)
    ax.set_xlim(-0.5, size - 0.5)
    ax.set_ylim(*((-0.5, size - 0.5) if origin == "lower" else (size - 0.5, -0.5)))
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
    truth: np.ndarray | None = None,
    truth_label: str = "truth",
    origin: str = "lower",
) -> Path:
    """A grid of spin maps like the paper's Figs. 2/3/4a/7: one row per sample.

    Maps of any size share one frame in HR pixel coordinates (an LR input
    overlays its SR), drawn with :func:`spin_rgb`.

    Args:
        rows: per row, column title -> map ``[H, W, C]`` (same titles in every row).
        path: PNG file to write.
        row_labels: text at the left of each row.
        title: figure title.
        highlight: column title drawn with a red frame (the paper's red boxes).
        truth: with one row: a second row shows each HR map's last component
            minus this map's (red above, blue below, +-0.5 full scale); maps
            that are not of its size, and the truth itself, are left blank.
        truth_label: what the difference row's titles call ``truth``.
        origin: ``"lower"`` for lattices (y up), ``"upper"`` for pictures (row 0 on top).
    """
    columns = list(rows[0])
    if truth is not None and len(rows) != 1:
        raise ValueError("a difference row needs exactly one row of maps")
    n_rows = len(rows) + (truth is not None)
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
                origin,
            )
        if row_labels:
            axes[i, 0].set_ylabel(row_labels[i], fontsize=9)
    if truth is not None:
        reference = np.asarray(truth)[..., -1]
        for ax, name in zip(axes[-1], columns, strict=True):
            spins = np.asarray(rows[0][name])
            ax.set_xticks([])
            ax.set_yticks([])
            if rows[0][name] is truth or spins.shape[:2] != reference.shape:
                ax.set_axis_off()
                continue
            diff = spins[..., -1] - reference
            size = reference.shape[0]
            bottom, top = (-0.5, size - 0.5) if origin == "lower" else (size - 0.5, -0.5)
            ax.imshow(
                diff,
                cmap="RdBu_r",
                vmin=-0.5,
                vmax=0.5,
                interpolation="nearest",
                origin=origin,
                extent=(-0.5, reference.shape[1] - 0.5, bottom, top),
            )
            ax.set_aspect("equal")
            ax.set_title(f"{name} - {truth_label}", fontsize=8)
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
