"""Scores `magsr_tf.priors.refine.refine`
against ground truth on dataset rows (docs/physics_prior.md).

Usage: python docs/scripts/refine_scores.py DATA.h5 RATIO N '{"steps": 200}'
Scores the last N rows (the test split) or, with START=K in the environment, rows K..K+N.
"""

import json
import os
import sys
import time

import h5py
import numpy as np

from magsr_tf.evaluation import metrics
from magsr_tf.physics.hamiltonian import energy_per_spin
from magsr_tf.physics.hamiltonian_io import resolve_hamiltonian
from magsr_tf.priors.refine import RefineConfig, refine

path, ratio, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
with h5py.File(path) as f:
    rows = f["hr"].shape[0]
    ham = f.attrs["hamiltonian"]
    start = int(os.environ.get("START", rows - n))
    hr = f["hr"][start : start + n].astype(np.float32)
    lr = f[f"lr/x{ratio}"][start : start + n].astype(np.float32)
t0 = time.perf_counter()
result = refine(lr, ratio, ham, config=RefineConfig(**options))
seconds = time.perf_counter() - t0
mse = metrics.mse(hr, result.sr)
corr = metrics.corr(hr, result.sr)
e_truth = energy_per_spin(hr, resolve_hamiltonian(ham))
print(
    f"{options} n={n} x{ratio}: MSE {mse.mean():.3g} (median {np.median(mse):.3g}, "
    f"max {mse.max():.3g}) Corr {corr.mean():.5f} E {result.energy_per_spin.mean():.5f} "
    f"vs GT {e_truth.mean():.5f} misfit {result.lr_misfit.mean():.2e} time {seconds:.1f}s"
)
