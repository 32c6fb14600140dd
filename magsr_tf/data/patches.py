"""Training patches cut from one large map (a microscope image).

Lee et al. (Sci. Rep. 2023, "Experimental images") train on many random LR
patches of one experimental image: 24,000 from MOKE, 2,800 from SPLEEM.
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError

MIN_PATCH = 4
"""Smallest patch edge in LR pixels the network's convolutions take."""


def random_patches(
    image: np.ndarray, patch: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Random square crops of a non-periodic ``[H, W, C]`` map.

    Crops never wrap around: a microscope image has edges. (Rotations and spin
    flips are applied later, per batch, by the trainer's augmentation.)

    Args:
        image: the LR spin map.
        patch: crop edge in pixels.
        count: number of crops.
        rng: the random generator of the crop positions.

    Returns:
        ``[count, patch, patch, C]`` float32.
    """
    image = np.asarray(image, dtype=np.float32)
    h, w, _ = image.shape
    if patch < MIN_PATCH or patch > min(h, w):
        raise MagsrError(
            f"patch must be between {MIN_PATCH} and the image size {h}x{w}. Received: patch={patch}"
        )
    if count < 1:
        raise MagsrError(f"need at least one patch. Received: patches={count}")
    ys = rng.integers(0, h - patch + 1, size=count)
    xs = rng.integers(0, w - patch + 1, size=count)
    rows = ys[:, None] + np.arange(patch)[None, :]
    cols = xs[:, None] + np.arange(patch)[None, :]
    return np.ascontiguousarray(image[rows[:, :, None], cols[:, None, :]])
