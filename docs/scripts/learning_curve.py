"""Learning curve behind docs/learning_curve.md: test-split SR quality of a shipped model's
recipe against the number of training configurations, with and without the energy prior.

Every run repeats the recipe in ``MODEL/train_config.json`` (steps, schedule, learning rate,
seed, batch size) and changes only the number of training states (the first N rows of
TRAIN) and the prior weight (the recipe's, or 0 for the paper's LR-only loss). The
compute budget is therefore the same at every size: what moves is the data alone.

Each run is scored on the test split of every TEST file (the network alone, no refinement),
next to aligned bicubic. Results go to OUT as they arrive; a rerun skips finished runs, so
an interrupted curve continues where it stopped.

Usage:
    python docs/scripts/learning_curve.py saved_models/typeI_x8 \
        --train TRAIN.h5 --test data/typeI_reproduce.h5 --test TRAIN.h5 \
        --sizes 100,500,2000,8000 --out docs/learning_curve/typeI_x8.json
    python docs/scripts/learning_curve.py --plot docs/learning_curve/*.json \
        --figure docs/figures/learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

PAPER_MSE = {("typeI", 4): 0.0016, ("typeI", 8): 0.0065, ("typeII", 4): 0.00018,
             ("typeII", 8): 0.00046, ("typeII", 16): 0.0061}  # fmt: skip
"""Table 1-2 of Lee et al. (2023), trained on 40,000 states."""


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"runs": []}


def save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def test_splits(paths: list[str], ratio: int) -> list:
    from magsr_tf.evaluation.evaluate import load_test_split

    return [load_test_split(p, ratio) for p in paths]


def bicubic_scores(splits, ratio: int) -> dict:
    from magsr_tf.evaluation import metrics
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.ops.spins import unit_normalize

    out = {}
    for split in splits:
        bicubic = unit_normalize(upsample(split.lr, ratio, "bicubic", aligned=True))
        mse = metrics.mse(split.hr, bicubic)
        out[str(split.path)] = {"mse": float(mse.mean()), "mse_std": float(mse.std())}
    return out


def run_curve(args) -> None:
    from magsr_tf.evaluation import metrics
    from magsr_tf.inference.apply import apply_model
    from magsr_tf.jobs.fit import git_commit
    from magsr_tf.nn.model import ModelConfig
    from magsr_tf.training.config import TrainConfig
    from magsr_tf.training.train import train_h5

    recipe = json.loads((Path(args.model) / "train_config.json").read_text())
    if args.epochs:
        recipe["epochs"] = args.epochs
    model_cfg = ModelConfig(**recipe["model"])
    ratio = model_cfg.ratio
    out = Path(args.out)
    data = load(out)
    splits = test_splits(args.test, ratio)
    data.update(
        model=str(args.model),
        train=str(args.train),
        recipe={k: recipe[k] for k in ("epochs", "steps_per_epoch", "batch_size",
                                       "learning_rate", "schedule", "seed", "physics_weight")},
        commit=git_commit(),
        bicubic=bicubic_scores(splits, ratio),
    )  # fmt: skip
    save(out, data)
    weights = [recipe["physics_weight"], 0.0] if not args.prior_only else [recipe["physics_weight"]]
    for n_train in args.sizes:
        for weight in weights:
            if any(r["n_train"] == n_train and r["physics_weight"] == weight for r in data["runs"]):
                continue
            config = TrainConfig(
                model=model_cfg,
                epochs=recipe["epochs"],
                steps_per_epoch=recipe["steps_per_epoch"],
                batch_size=recipe["batch_size"],
                learning_rate=recipe["learning_rate"],
                schedule=recipe["schedule"],
                seed=recipe["seed"],
                physics_weight=weight,
                hamiltonian=recipe["hamiltonian"] if weight > 0 else None,
            )
            t0 = time.perf_counter()
            sr_model = train_h5(args.train, config, stop=n_train).sr_model
            seconds = time.perf_counter() - t0
            scores = {}
            for split in splits:
                sr = apply_model(sr_model, split.lr)
                mse = metrics.mse(split.hr, sr)
                scores[str(split.path)] = {
                    "mse": float(mse.mean()),
                    "mse_std": float(mse.std()),
                    "corr": float(metrics.corr(split.hr, sr).mean()),
                }
            run = {"n_train": n_train, "physics_weight": weight,
                   "steps": recipe["epochs"] * recipe["steps_per_epoch"],
                   "train_seconds": seconds, "test": scores}  # fmt: skip
            data["runs"].append(run)
            save(out, data)
            shown = ", ".join(f"{Path(p).name} MSE {s['mse']:.4g}" for p, s in scores.items())
            print(f"N={n_train} prior {weight}: {shown}; trained {seconds:.0f} s", flush=True)


def test_count(path: str) -> int:
    """Size of a dataset's test split (for the standard error of the mean MSE)."""
    from magsr_tf.data.format import open_info

    return open_info(path).n_test


def plot(paths: list[str], figure: str) -> None:
    """One panel per model; every results file on it is a pair of curves (prior, no prior)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[dict]] = {}
    for p in paths:
        curve = json.loads(Path(p).read_text())
        panels.setdefault(Path(curve["model"]).name, []).append(curve)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.4), squeeze=False)
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        kind, ratio = name.rsplit("_x", 1)[0], int(name.rsplit("_x", 1)[1])
        test = next(iter(curves[0]["bicubic"]))  # the first --test file: the shipped models' split
        sem = 1.0 / np.sqrt(test_count(test))
        for curve in curves:
            steps = curve["recipe"]["epochs"] * curve["recipe"]["steps_per_epoch"]
            for prior, style, label in ((True, "o-", "energy prior"), (False, "s--", "no prior")):
                runs = sorted(
                    (r for r in curve["runs"] if (r["physics_weight"] > 0) == prior),
                    key=lambda r: r["n_train"],
                )
                if runs:
                    ax.errorbar(
                        [r["n_train"] for r in runs],
                        [r["test"][test]["mse"] for r in runs],
                        yerr=[r["test"][test]["mse_std"] * sem for r in runs],
                        fmt=style,
                        capsize=3,
                        label=f"network, {label}, {steps} steps",
                    )
        ax.axhline(curves[0]["bicubic"][test]["mse"], color="gray", ls=":",
                   label="aligned bicubic (unit spins)")  # fmt: skip
        if (kind, ratio) in PAPER_MSE:
            ax.plot([40000], [PAPER_MSE[(kind, ratio)]], "k*", ms=11, label="paper (40,000)")
        ax.set_xlim(10, 1e5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training configurations (x 16 LR phases)")
        ax.set_ylabel(f"test MSE ± s.e. ({Path(test).name} test split)")
        ax.set_title(f"{kind} x{ratio}: trained on LR only")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = Path(figure).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, figure)
    print(f"wrote {figure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="shipped model folder whose recipe is repeated")
    parser.add_argument("--train", help="HDF5 dataset; the first N rows train")
    parser.add_argument("--test", action="append", default=[], help="HDF5 dataset(s) scored")
    parser.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--prior-only", action="store_true", help="skip the no-prior runs")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (longer runs)")
    parser.add_argument("--out", help="results JSON (resumable)")
    parser.add_argument("--plot", nargs="+", help="results JSON files to plot")
    parser.add_argument("--figure", default="docs/figures/learning_curve.png")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot, args.figure)
    else:
        run_curve(args)


if __name__ == "__main__":
    main()
