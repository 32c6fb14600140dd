"""The anisotropy rule of the real-image prior on synthetic labyrinths with a known truth.

Domains with erf walls (a sharp labyrinth blurred by a Gaussian of sigma_w native
pixels, as a tip or lens blurs a sharp wall) or tanh walls (the lattice model's own
profile) are degraded by the default operator (Gaussian sigma = 1, stride r) and
reconstructed from the LR image with K from the LR wall width, converted to a tanh
width either by matching the |m| < 1/2 band or by least squares. Prints Pearson r
against the truth for both conversions and aligned bicubic.

Usage: python docs/scripts/prior_k_rule.py [RATIO]
"""

import math
import sys

import numpy as np
from scipy.ndimage import gaussian_filter

from magsr_tf.evaluation.metrics import pearson
from magsr_tf.ops.degradation import degrade, parse_degradation, wall_width
from magsr_tf.ops.interpolation import upsample
from magsr_tf.priors.image_prior import (
    MIN_WALL,
    TANH_PER_ERF_BAND,
    TANH_PER_ERF_L2,
    PriorConfig,
    degradation_sigma,
    reconstruct,
    synthetic_domains,
)

SEEDS = (1, 2)
SIZE = 256
PERIOD = 14.0
"""Domain period in native pixels (the MFM check's domains are about 7 pixels wide)."""
ratio = int(sys.argv[1]) if len(sys.argv) > 1 else 4
deg = parse_degradation(None)
blur = degradation_sigma(deg, ratio)
print(f"x{ratio}, {SIZE}x{SIZE}, period {PERIOD} px, seeds {SEEDS}")
print("walls        | bicubic r | band rule: K, r  | least squares: K, r")
for shape, width in (("erf", 1.0), ("erf", 1.5), ("erf", 2.0), ("tanh", 1.5), ("tanh", 2.5)):
    rows = []
    for seed in SEEDS:
        if shape == "erf":
            truth = gaussian_filter(synthetic_domains((SIZE, SIZE), PERIOD, 0, seed), width)
        else:
            truth = synthetic_domains((SIZE, SIZE), PERIOD, width, seed)
        truth = truth[..., None]
        lr = degrade(truth, ratio, deg, "reflect")
        native = math.sqrt(max(wall_width(lr[..., 0], ratio) ** 2 - blur**2, 0.0))
        row = [pearson(truth, upsample(lr, ratio, "bicubic", aligned=True, padding="reflect"))]
        for factor in (TANH_PER_ERF_BAND, TANH_PER_ERF_L2):
            k = 1.0 / (2.0 * max(factor * native, MIN_WALL) ** 2)
            out = reconstruct(lr, ratio, config=PriorConfig(anisotropy=k))
            row += [k, pearson(truth, out.image)]
        rows.append(row)
    m = np.mean(rows, axis=0)
    print(
        f"{shape} {width:<4}     | {m[0]:.5f}   | {m[1]:.3f}, {m[2]:.5f}  | {m[3]:.3f}, {m[4]:.5f}",
        flush=True,
    )
