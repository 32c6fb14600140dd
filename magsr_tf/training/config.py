"""Training configuration: what a run trains, for how long, at which learning rate.

Frozen dataclasses checked in ``__post_init__``; the learning-rate schedules
(:func:`learning_rate`) map ``TrainConfig.schedule`` onto Keras schedules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from magsr_tf.errors import MagsrError
from magsr_tf.nn.model import ModelConfig

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "exponential")
WARMUP_FRACTION = 0.1
EXPONENTIAL_FINAL_FRACTION = 0.01


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        model: the architecture.
        epochs: number of epochs.
        steps_per_epoch: optimizer steps per epoch; None means one pass over the
            training images (at least one step).
        batch_size: global batch size (split across replicas).
        learning_rate: Adam learning rate (the paper: 0.01, fixed).
        schedule: "constant" (the paper), "cosine" decay to zero over the run, or
            "warmup_cosine" (linear warm-up from 0 to ``learning_rate`` over the
            first 10% of the steps, then cosine decay to zero), or "exponential"
            decay to 1% of ``learning_rate`` over the run.
        augment: random quarter-turn rotations and global spin flips (exact
            symmetries of both Hamiltonians) and stored sub-pixel phases.
        seed: seed of weight initialization, data order and augmentation.
        out_dir: where checkpoints, TensorBoard logs and the history go; None
            trains in memory only (no resume).
        strategy: "auto" (multi-worker if TF_CONFIG names several workers,
            mirrored over GPUs if there are several, else the default),
            "default", "mirrored" or "multiworker".
        recalibrate_bn_batches: batches used to re-estimate BatchNorm
            statistics after training (0: keep the moving averages).
        physics_weight: w of the energy prior: the loss is
            MSE(LR in, LR out) + w * E_H(SR) / N (0: the paper's LR-only loss).
            Still unsupervised: the prior needs the Hamiltonian, never HR data.
        hamiltonian: the data's Hamiltonian (a JSON-able dict as
            :func:`magsr_tf.physics.hamiltonian_io.hamiltonian_to_json` writes it); required
            when ``physics_weight > 0``.
        noise: largest sigma of the input-noise augmentation (0: none). Each
            training image gets Gaussian noise of sigma drawn uniformly from
            [0, noise] (:func:`magsr_tf.ops.noise.add_noise`) on the network's
            input, while the loss compares the SR's downsizing with the clean
            LR image: still LR data only, no HR image is read.
        noise_clean_fraction: fraction of the images left clean when ``noise > 0``.
        init_weights: a ``.keras`` SR model (or a model folder holding
            ``model.keras``) whose weights start the run (fine-tuning), matched
            by layer name; None starts from random weights.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 10
    steps_per_epoch: int | None = None
    batch_size: int = 32
    learning_rate: float = 0.01
    schedule: str = "constant"
    augment: bool = True
    seed: int = 0
    out_dir: Path | None = None
    strategy: str = "auto"
    recalibrate_bn_batches: int = 16
    physics_weight: float = 0.0
    hamiltonian: dict | None = None
    noise: float = 0.0
    noise_clean_fraction: float = 0.2
    init_weights: str | None = None

    def __post_init__(self):
        if not (0 <= self.noise <= 1 and math.isfinite(self.noise)):
            raise MagsrError(f"noise must be in [0, 1]. Received: noise={self.noise}")
        if not 0 <= self.noise_clean_fraction <= 1:
            raise MagsrError(
                f"noise_clean_fraction must be in [0, 1]. Received: {self.noise_clean_fraction}"
            )
        if self.epochs < 1:
            raise MagsrError(f"epochs must be >= 1. Received: epochs={self.epochs}")
        if self.batch_size < 1:
            raise MagsrError(f"batch_size must be >= 1. Received: batch_size={self.batch_size}")
        if not self.learning_rate > 0:
            raise MagsrError(f"learning rate must be > 0. Received: lr={self.learning_rate}")
        if self.schedule not in SCHEDULES:
            raise MagsrError(f"schedule must be one of {SCHEDULES}. Received: {self.schedule!r}")
        if self.strategy not in STRATEGIES:
            raise MagsrError(
                f"strategy must be one of {STRATEGIES}. Received: strategy={self.strategy!r}"
            )
        if not (self.physics_weight >= 0 and math.isfinite(self.physics_weight)):
            raise MagsrError(
                f"physics weight must be >= 0. Received: physics_weight={self.physics_weight}"
            )
        if self.physics_weight > 0:
            if self.hamiltonian is None:
                raise MagsrError(
                    "the energy prior (physics_weight > 0) needs the data's Hamiltonian"
                )
            if self.model.channels != 3:
                raise MagsrError(
                    "the energy prior needs 3-component spin maps; use physics_weight=0 for "
                    f"{self.model.channels}-channel data"
                )
            from magsr_tf.physics.hamiltonian_io import resolve_hamiltonian

            resolve_hamiltonian(self.hamiltonian)  # fail early on a bad description
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise MagsrError(
                f"steps_per_epoch must be >= 1. Received: steps_per_epoch={self.steps_per_epoch}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d


@dataclass
class TrainResult:
    """What training produced.

    Attributes:
        sr_model: the trained SR model (LR -> unit-spin SR).
        training_model: LR -> LR graph sharing the SR model's weights.
        history: one dict per epoch (loss, SR validation MSE/Corr, seconds, images/s).
        resumed_from: epoch the run resumed from (0 for a fresh run).
    """

    sr_model: object
    training_model: object
    history: list[dict]
    resumed_from: int = 0


ProgressFn = Callable[[dict], None]


def learning_rate(config: TrainConfig, total_steps: int):
    """The optimizer's learning rate or schedule for ``config.schedule`` over ``total_steps``."""
    import keras

    if config.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps)
    if config.schedule == "warmup_cosine":
        warmup = max(1, int(WARMUP_FRACTION * total_steps))
        return keras.optimizers.schedules.CosineDecay(
            0.0,
            max(1, total_steps - warmup),
            warmup_target=config.learning_rate,
            warmup_steps=warmup,
        )
    if config.schedule == "exponential":
        return keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, total_steps, EXPONENTIAL_FINAL_FRACTION
        )
    return config.learning_rate
