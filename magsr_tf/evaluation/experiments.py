"""The paper's experiments with trained networks: cross-feeding (Fig. 4) and noise (Figs. 5, 6).

**Cross-feeding** (Lee et al., "Cross-feeding data to the trained networks"):
Net I (trained on Type I) and Net II (trained on Type II) each super-resolve
the test split of both types; the per-image MSE, PSNR and Corr of the four
(network, data) pairs are compared as distributions. The paper ranks them
Net II (Type II) > Net I (Type I) > Net II (Type I) > Net I (Type II).

**Noise response** ("Noise response"): the network's input is replaced by
S_hat = L2normalize(S + alpha N), and the *recursive process* feeds the
network's LR output (the SR map passed through the fixed Gaussian downsizing,
i.e. the training model's output) back as its input, 100 times. After each
pass the SR map is scored (Corr) against the ground truth. Choices the paper
leaves open, fixed here:

- S is the LR test image (the network's input); N is a map of independent
  random unit vectors on the LR grid (for one-component data, uniform values
  in [-1, 1]), drawn once per image and scaled by every alpha (common random
  numbers, so the curves against alpha are smooth). The formula is applied
  at alpha = 0 too, i.e. the clean input is L2-normalized.
- Iteration t = 1 is the SR map of the noisy input; iteration t + 1 the SR
  map of the downsized iteration-t map. The SR model's output is unit spins,
  so the fed-back LR map is the downsizing of unit spins.
- "Max Corr" for an alpha is the maximum over iterations of the mean Corr over
  test images (Figs. 5c, 6c); the mean of the per-image maxima is reported too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.evaluation.evaluate import (
    DATA_ALIASES,
    baseline_maps,
    kind_label,
    load_test_split,
    match_channels,
    model_folder,
)
from magsr_tf.evaluation.metrics import corr, per_image, summarize
from magsr_tf.inference.apply import apply_model, model_channels, model_padding
from magsr_tf.io.writers import write_json
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.spins import unit_normalize

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

DEFAULT_ALPHAS = {
    # The paper scans alpha from 0 to 200 (Type I) and 0 to 50 (Type II), with
    # the structure lost around alpha ~ 1; the grid is dense there.
    "typeI": (0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 20.0, 200.0),
    "typeII": (0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 50.0),
}
DEFAULT_ITERATIONS = 100
DEFAULT_SNAPSHOTS = (1, 10, 20, 100)
EXPERIMENTS_DIR = Path("saved_models") / "experiments"
NOISE_SEED = 5


# --------------------------------------------------------------------------- cross-feeding


@dataclass(frozen=True)
class CrossfeedConfig:
    """``magsr-tf experiment crossfeed``.

    Attributes:
        net_i: SR model trained on Type I (folder or ``.keras``).
        net_ii: SR model trained on Type II; same ratio as ``net_i``.
        data_i: Type I data (``typeI`` or a path).
        data_ii: Type II data (``typeII`` or a path).
        out: output folder (JSON and figures); default
            ``saved_models/experiments/crossfeed_x{r}``.
        max_images: use only the first this-many test images of each dataset.
        batch_size: SR inference batch size.
    """

    net_i: Path
    net_ii: Path
    data_i: str = "typeI"
    data_ii: str = "typeII"
    out: Path | None = None
    max_images: int | None = None
    batch_size: int = 32

    def __post_init__(self):
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be positive. Received: {self.batch_size}")


def crossfeed(config: CrossfeedConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Fig. 4: the four (network, data) pairs, their metric distributions and sample images.

    Returns:
        JSON-able dict: ``pairs[label]`` with ``metrics`` (mean/std) and
        ``per_image``; ``bilinear_psnr`` (mean PSNR of the aligned and the
        paper-grid bilinear baseline per data set, Fig. 4b's arrows);
        ``ranking`` (pair labels by mean PSNR); ``json``; ``figures``.
    """
    from magsr_tf.nn.model import load_sr_model, model_ratio

    nets = {"Net I": load_sr_model(config.net_i), "Net II": load_sr_model(config.net_ii)}
    ratios = {name: model_ratio(m) for name, m in nets.items()}
    if ratios["Net I"] != ratios["Net II"]:
        raise MagsrError(
            f"the two networks must have the same ratio. Received: Net I x{ratios['Net I']}, "
            f"Net II x{ratios['Net II']}"
        )
    ratio = ratios["Net I"]
    data = {
        "Type I": load_test_split(config.data_i, ratio, config.max_images),
        "Type II": load_test_split(config.data_ii, ratio, config.max_images),
    }
    pairs: dict[str, Any] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    per_pair: dict[str, dict[str, np.ndarray]] = {}
    total = 4
    done = 0
    for net_name, net in nets.items():
        for data_name, split in data.items():
            split = match_channels(split, model_channels(net))
            label = f"{net_name} ({data_name})"
            sr = apply_model(net, split.lr, config.batch_size)
            values = per_image(split.hr, sr)
            per_pair[label] = values
            pairs[label] = {
                "network": str(config.net_i if net_name == "Net I" else config.net_ii),
                "data": str(split.path),
                "n_images": len(split.hr),
                "metrics": {k: summarize(v) for k, v in values.items()},
                "per_image": {k: v.tolist() for k, v in values.items()},
            }
            samples[label] = {
                f"input x{ratio}": split.lr[0],
                "SR": sr[0],
                "ground truth": split.hr[0],
            }
            done += 1
            if progress:
                progress(done, total)
    bilinear = {}
    for data_name, split in data.items():
        base = baseline_maps(split.lr, ratio, model_padding(nets["Net I"]))
        bilinear[data_name] = {
            "aligned": summarize(per_image(split.hr, base["bilinear"])["psnr"]),
            "paper_grid": summarize(per_image(split.hr, base["bilinear_paper"])["psnr"]),
        }
    ranking = sorted(pairs, key=lambda k: -pairs[k]["metrics"]["psnr"]["mean"])
    out = Path(config.out) if config.out else EXPERIMENTS_DIR / f"crossfeed_x{ratio}"
    from magsr_tf.evaluation.figures import comparison_figure, distributions_figure

    fig_a = comparison_figure(
        list(samples.values()),
        out / f"crossfeed_x{ratio}_samples.png",
        row_labels=list(samples),
        title=f"Cross-feeding x{ratio} (Fig. 4a)",
    )
    markers = {
        "psnr": {
            f"bilinear (aligned), {name}": v["aligned"]["mean"] for name, v in bilinear.items()
        }
    }
    fig_b = distributions_figure(
        {label: {k: per_pair[label][k] for k in ("mse", "psnr", "corr")} for label in per_pair},
        out / f"crossfeed_x{ratio}_distributions.png",
        markers=markers,
        title=f"Cross-feeding x{ratio}: per-image metrics (Fig. 4b; PSNR with MAX = 2)",
    )
    result = {
        "command": "experiment crossfeed",
        "ratio": ratio,
        "pairs": pairs,
        "bilinear_psnr": bilinear,
        "ranking": ranking,
        "paper_ranking": [
            "Net II (Type II)",
            "Net I (Type I)",
            "Net II (Type I)",
            "Net I (Type II)",
        ],
        "figures": [str(fig_a), str(fig_b)],
    }
    json_path = out / f"crossfeed_x{ratio}.json"
    result["json"] = str(json_path)
    write_json(json_path, result)
    return result


# --------------------------------------------------------------------------- noise


@dataclass(frozen=True)
class NoiseConfig:
    """``magsr-tf experiment noise``.

    Attributes:
        model: SR model (folder or ``.keras``).
        data: ``typeI``, ``typeII`` or a dataset path.
        alphas: noise intensities; default by data kind (:data:`DEFAULT_ALPHAS`).
        iterations: passes of the recursive process (paper: 100).
        snapshots: iterations whose SR maps (first test image) are kept for the figure.
        max_images: use only the first this-many test images (paper: 100, all).
        seed: seed of the noise maps.
        out: output folder; default ``MODEL_DIR/noise_{kind}_x{r}``.
        batch_size: SR inference batch size.
    """

    model: Path
    data: str = "typeI"
    alphas: tuple[float, ...] | None = None
    iterations: int = DEFAULT_ITERATIONS
    snapshots: tuple[int, ...] = DEFAULT_SNAPSHOTS
    max_images: int | None = None
    seed: int = NOISE_SEED
    out: Path | None = None
    batch_size: int = 64

    def __post_init__(self):
        if self.iterations < 1:
            raise MagsrError(f"iterations must be positive. Received: {self.iterations}")
        if self.alphas is not None:
            if not self.alphas:
                raise MagsrError("alphas must not be empty")
            if any(not np.isfinite(a) or a < 0 for a in self.alphas):
                raise MagsrError(f"alphas must be finite and >= 0. Received: {self.alphas}")
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be positive. Received: {self.batch_size}")


def noise_maps(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Random unit vectors ``N`` (uniform on the sphere) or, for one channel, uniform [-1, 1]."""
    shape = tuple(shape)
    if shape[-1] == 1:
        return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)
    return unit_normalize(rng.normal(size=shape))


def recursive_process(
    sr_model,
    lr_start: np.ndarray,
    hr: np.ndarray,
    ratio: int,
    iterations: int,
    padding: str = "periodic",
    keep: Sequence[int] = (),
    keep_chains: Sequence[int] | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Feeds the network's LR output back as its input and scores every pass.

    Args:
        sr_model: LR -> SR (unit spins).
        lr_start: the first input ``[n, h, w, C]``.
        hr: ground truth for each input ``[n, H, W, C]``.
        ratio: SR ratio.
        iterations: number of passes T.
        padding: downsizing padding of the fed-back map.
        keep: iterations (1-based) whose SR maps are returned.
        keep_chains: which inputs' SR maps are kept (all if None).
        batch_size: inference batch size.
        progress: called with (passes done, total passes) over chunks of chains.

    Returns:
        ``(corr [T, n], kept)``: Corr with the ground truth after each pass, and
        iteration -> SR maps ``[len(keep_chains), H, W, C]`` in ``keep_chains`` order.
    """
    lr_start = np.asarray(lr_start, dtype=np.float32)
    n = len(lr_start)
    corrs = np.zeros((iterations, n))
    chains = np.arange(n) if keep_chains is None else np.asarray(keep_chains, dtype=np.int64)
    kept: dict[int, dict[int, np.ndarray]] = {t: {} for t in keep if 1 <= t <= iterations}
    # Chains are independent: run them in chunks through all iterations, so
    # that memory stays bounded however many images and alphas there are.
    chunk = max(batch_size, 1)
    n_chunks = -(-n // chunk)
    for c, start in enumerate(range(0, n, chunk)):
        x = lr_start[start : start + chunk]
        truth = hr[start : start + chunk]
        for t in range(1, iterations + 1):
            sr = apply_model(sr_model, x, batch_size)
            corrs[t - 1, start : start + chunk] = corr(truth, sr)
            if t in kept:
                for i in chains[(chains >= start) & (chains < start + len(x))]:
                    kept[t][int(i)] = sr[i - start]
            x = downsample(sr, ratio, padding)
            if progress:
                progress(c * iterations + t, n_chunks * iterations)
    return corrs, {t: np.stack([maps[int(i)] for i in chains]) for t, maps in kept.items()}


def noise_response(config: NoiseConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Figs. 5/6: Corr per iteration of the recursive process for each noise intensity alpha.

    Returns:
        JSON-able dict: per alpha (as a string key) ``mean_corr`` [T],
        ``std_corr`` [T], ``max_mean_corr``, ``best_iteration``,
        ``mean_of_max_corr``; the inputs; ``json`` and ``figures``.
    """
    from magsr_tf.nn.model import load_sr_model, model_ratio

    sr_model = load_sr_model(config.model)
    ratio = model_ratio(sr_model)
    padding = model_padding(sr_model)
    split = match_channels(
        load_test_split(config.data, ratio, config.max_images), model_channels(sr_model)
    )
    kind = split.kind if split.kind in DATA_ALIASES else "typeI"
    alphas = tuple(float(a) for a in (config.alphas or DEFAULT_ALPHAS[kind]))
    snapshots = tuple(sorted({s for s in config.snapshots if 1 <= s <= config.iterations}))
    n = len(split.hr)
    noise = noise_maps(np.random.default_rng(config.seed), split.lr.shape)
    # All alphas in one batch of n * len(alphas) recursive chains.
    starts = np.concatenate([unit_normalize(split.lr + a * noise) for a in alphas])
    truth = np.concatenate([split.hr] * len(alphas))
    shown = _spread(alphas, 6)
    corrs, kept = recursive_process(
        sr_model,
        starts,
        truth,
        ratio,
        config.iterations,
        padding,
        keep=snapshots,
        keep_chains=[k * n for k in shown],
        batch_size=config.batch_size,
        progress=progress,
    )
    corrs = corrs.reshape(config.iterations, len(alphas), n)
    per_alpha: dict[str, Any] = {}
    curves, maxima = {}, {}
    for k, alpha in enumerate(alphas):
        c = corrs[:, k, :]
        mean = c.mean(axis=1)
        best = int(np.argmax(mean))
        per_alpha[f"{alpha:g}"] = {
            "alpha": alpha,
            "mean_corr": mean.tolist(),
            "std_corr": c.std(axis=1).tolist(),
            "max_mean_corr": float(mean[best]),
            "best_iteration": best + 1,
            "mean_of_max_corr": float(c.max(axis=0).mean()),
            "corr_first_iteration": summarize(c[0]),
            "corr_last_iteration": summarize(c[-1]),
        }
        curves[alpha] = mean
        maxima[alpha] = float(mean[best])
    out = (
        Path(config.out)
        if config.out
        else model_folder(config.model) / f"noise_{split.kind}_x{ratio}"
    )
    from magsr_tf.evaluation.figures import comparison_figure, noise_curves_figure

    fig_curves = noise_curves_figure(
        np.arange(1, config.iterations + 1),
        curves,
        maxima,
        out / f"noise_{split.kind}_x{ratio}_corr.png",
        title=f"{kind_label(split.kind)} x{ratio}: recursive process with noise (Figs. 5/6 b, c)",
    )
    rows = []
    for j, k in enumerate(shown):
        row = {"noisy input": starts[k * n]}
        for t in snapshots:
            row[f"SR, iteration {t}"] = kept[t][j]
        row["ground truth"] = split.hr[0]
        rows.append(row)
    fig_maps = comparison_figure(
        rows,
        out / f"noise_{split.kind}_x{ratio}_samples.png",
        row_labels=[f"alpha = {alphas[k]:g}" for k in shown],
        title=f"{kind_label(split.kind)} x{ratio}: test image 0 in the recursive process "
        "(Figs. 5a/6a)",
    )
    result = {
        "command": "experiment noise",
        "model": str(config.model),
        "data": str(split.path),
        "kind": split.kind,
        "ratio": ratio,
        "n_images": n,
        "iterations": config.iterations,
        "seed": config.seed,
        "alphas": list(alphas),
        "snapshots": list(snapshots),
        "noise": "S_hat = L2normalize(S_LR + alpha N), N random unit vectors per LR pixel; "
        "recursive process x_{t+1} = downsample(SR(x_t))",
        "per_alpha": per_alpha,
        "figures": [str(fig_curves), str(fig_maps)],
    }
    json_path = out / f"noise_{split.kind}_x{ratio}.json"
    result["json"] = str(json_path)
    write_json(json_path, result)
    return result


def _spread(values: Sequence[float], count: int) -> list[int]:
    """Indices of at most ``count`` entries spread evenly over ``values``."""
    if len(values) <= count:
        return list(range(len(values)))
    return sorted({int(round(i)) for i in np.linspace(0, len(values) - 1, count)})
