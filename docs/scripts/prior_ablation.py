"""Type I x8 runs behind docs/physics_prior.md: training-set size with the prior, and the
supervised ceiling (same network trained on HR targets; for comparison only, never a default).

Usage: python docs/scripts/prior_ablation.py data/typeI_reproduce.h5 MODE [--seed S]
MODE: size N (N training states) | lr LR (peak learning rate) | noskip (no bicubic skip) |
supervised. All but "supervised" train on LR only with the energy prior. --seed sets the
training seed (initial weights, batch order, augmentation); default 0, the shipped model's.
"""

import sys
import time

import h5py
import numpy as np

from magsr_tf.evaluation import metrics
from magsr_tf.inference.apply import apply_model
from magsr_tf.nn.model import ModelConfig
from magsr_tf.physics.hamiltonian_io import dataset_hamiltonian, hamiltonian_to_json
from magsr_tf.training.config import TrainConfig
from magsr_tf.training.train import train_h5

STEPS, EPOCHS, RATIO = 150, 6, 8
DEFAULT_SEED = 0
args = sys.argv[1:]
SEED = DEFAULT_SEED
if "--seed" in args:
    at = args.index("--seed")
    SEED = int(args[at + 1])
    del args[at : at + 2]
path, mode = args[0], args[1]
with h5py.File(path) as f:
    n, n_test = f["hr"].shape[0], int(f.attrs["n_test"])
    hr_test = f["hr"][n - n_test :].astype(np.float32)
    lr_test = f[f"lr/x{RATIO}"][n - n_test :].astype(np.float32)
t0 = time.perf_counter()
if mode in ("size", "lr", "noskip"):
    n_train = int(args[2]) if mode == "size" else n - n_test
    peak = float(args[2]) if mode == "lr" else 0.003
    config = TrainConfig(
        model=ModelConfig(ratio=RATIO, residual=mode != "noskip"),
        epochs=EPOCHS,
        steps_per_epoch=STEPS,
        learning_rate=peak,
        schedule="warmup_cosine",
        seed=SEED,
        physics_weight=0.03,
        hamiltonian=hamiltonian_to_json(dataset_hamiltonian(path)),
    )
    sr_model = train_h5(path, config, stop=n_train).sr_model
    label = f"energy prior, {n_train} training states x 16 phases, lr {peak}, seed {SEED}" + (
        ", no bicubic skip" if mode == "noskip" else ""
    )
else:
    import keras

    from magsr_tf.nn.model import build_models

    keras.utils.set_random_seed(SEED)
    with h5py.File(path) as f:
        n_train = n - n_test
        lr = f[f"lr/x{RATIO}"][:n_train].astype(np.float32)
        hr = f["hr"][:n_train].astype(np.float32)
    sr_model, _ = build_models(ModelConfig(ratio=RATIO))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, EPOCHS * STEPS - 90, warmup_target=0.003, warmup_steps=90
    )
    sr_model.compile(keras.optimizers.Adam(schedule), loss="mse")
    ds_steps = n_train // 32
    sr_model.fit(lr, hr, batch_size=32, epochs=EPOCHS * STEPS // ds_steps, verbose=0)
    label = f"supervised on HR targets, {n_train} states (comparison only)"
sr = apply_model(sr_model, lr_test)
mse = metrics.mse(hr_test, sr)
print(
    f"{label}: test MSE {mse.mean():.4g} ± {mse.std():.2g}, "
    f"Corr {metrics.corr(hr_test, sr).mean():.5f}, {time.perf_counter() - t0:.0f} s"
)
