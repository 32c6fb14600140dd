"""``magsr-tf bench refine``: physics-informed reconstructions per second.

Anneals a few Type I states (the package's own annealer), lowers them x8 with
the Gaussian downsizing, and times :func:`magsr_tf.priors.refine.refine` at its
default steps. The reference measured in the same run is one training step of
the x8 network (batch 32, the real step of ``fit``), so the figure reads as
"refining one state costs as much as N training steps" on any machine.
"""

from __future__ import annotations

import time

import numpy as np

from magsr_tf.benchmarks.train import _timed, benchmark_step
from magsr_tf.nn.model import ModelConfig

BENCH_SEED = 20230811
DEFAULT_STATES = 16
RATIO = 8
LATTICE = 128
NOISE_SIGMA = 0.05


def bench_refine(
    states: int = DEFAULT_STATES,
    steps: int | None = None,
    seconds: float = 10.0,
    noise: float = NOISE_SIGMA,
) -> list[dict]:
    """Rows of states/s of refine (Type I x8), clean and noisy, against the x8 training step.

    The noisy row refines the same states with LR noise of ``noise`` per
    component, weighted by the noise level estimated from the maps as
    ``magsr-tf refine`` does (the spectral floor cannot measure it at x8, so
    the estimate here is given the true level: the timing is the same).

    Args:
        states: annealed Type I states refined together (one batch).
        steps: refinement steps (None: :data:`magsr_tf.priors.refine.DEFAULT_STEPS`).
        seconds: timing of the training-step reference.
        noise: sigma of the noisy row (0: no noisy row).
    """
    from magsr_tf.evaluation import metrics
    from magsr_tf.ops.downsample import downsample
    from magsr_tf.physics.anneal import anneal
    from magsr_tf.physics.hamiltonian import TypeI
    from magsr_tf.priors.refine import DEFAULT_STEPS, RefineConfig, refine

    steps = DEFAULT_STEPS if steps is None else steps
    rngs = [np.random.default_rng([BENCH_SEED, i]) for i in range(states)]
    hr = anneal(TypeI(), rngs, lattice=LATTICE, workers=2)
    lr = downsample(hr, RATIO)
    config = RefineConfig(steps=steps, batch_size=states)
    refine(lr[:1], RATIO, TypeI(), config=RefineConfig(steps=2))  # trace and warm up
    cases = [(f"Type I x{RATIO}, L={LATTICE}", lr, None)]
    if noise > 0:
        from magsr_tf.ops.noise import add_noise

        noisy = add_noise(lr, noise, np.random.default_rng([BENCH_SEED, 99]))
        cases.append((f"Type I x{RATIO}, L={LATTICE}, LR noise {noise:g}", noisy, noise))
    timed = []
    for case, x, sigma in cases:
        t0 = time.perf_counter()
        result = refine(x, RATIO, TypeI(), config=config, noise=sigma)
        timed.append((case, time.perf_counter() - t0, result))
    step_rate = _timed(benchmark_step(ModelConfig(ratio=RATIO), 32), seconds)
    rows = []
    for case, refine_seconds, result in timed:
        states_per_s = states / refine_seconds
        rows.append(
            {
                "case": case,
                "states": states,
                "steps": steps,
                "refine states/s": states_per_s,
                "refine s/state": 1.0 / states_per_s,
                "100 states (projected s)": 100.0 / states_per_s,
                "MSE vs ground truth": float(metrics.mse(hr, result.sr).mean()),
                "train steps/s (x8, batch 32)": step_rate,
                "1 state = N train steps": step_rate / states_per_s,
            }
        )
    return rows
