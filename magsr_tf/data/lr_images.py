"""The LR images of a dataset's rows: one per ratio, and the shifted LR phases.

``lr/x{r}`` holds ``downsample(hr, r)`` (Lee et al., Sci. Rep. 13, 11526, 2023,
the Gaussian downsizing op). ``lr_phases/x{r}`` adds, as a training
augmentation, the LR images of the same state shifted by P distinct non-zero
whole-HR-pixel offsets in [0, r)^2; the offsets of configuration ``i`` come
from ``np.random.default_rng([seed, i, r])``, so they do not depend on how the
rows are split into chunks or workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from magsr_tf.ops.downsample import downsample


def phase_offsets(seed: int, index: int, ratio: int, phases: int) -> np.ndarray:
    """The (dy, dx) HR-pixel offsets of the LR phases of one configuration.

    ``phases`` distinct offsets from [0, r)^2 without (0, 0), drawn from
    ``default_rng([seed, index, ratio])``; int16 ``[phases, 2]``.
    """
    rng = np.random.default_rng([seed, index, ratio])
    flat = rng.choice(ratio * ratio - 1, size=phases, replace=False) + 1
    return np.stack(np.divmod(flat, ratio), axis=-1).astype(np.int16)


def lr_phase_images(hr: np.ndarray, ratio: int, offsets: np.ndarray) -> np.ndarray:
    """LR images of one state ``hr`` [L, L, C] shifted by each offset: [P, L/r, L/r, C].

    Image p is ``downsample(roll(hr, -offsets[p]), ratio)``. A whole-pixel shift
    of a ground state on a periodic lattice is again a ground state, so these
    are genuine LR images of the same Hamiltonian. Computed as one stride-1
    pass of the same Gaussian filter, ``downsample(hr, 1)``, sampled at
    ``(k r + dy, l r + dx)``: the same taps and sums as the shifted downsample
    (equal to float32 rounding) for one filter pass instead of P.
    """
    blurred = downsample(hr[None], 1)[0]
    return np.stack([blurred[int(dy) :: ratio, int(dx) :: ratio] for dy, dx in offsets])


def lr_rows(
    hr: np.ndarray, first_index: int, ratios: Sequence[int], phases: int, seed: int
) -> dict[str, np.ndarray]:
    """LR datasets' rows for the HR rows ``hr`` (global indices from ``first_index``).

    Each configuration is downsized on its own, so its LR bits never depend on
    which other configurations share the chunk.

    Args:
        hr: float32 HR states [rows, L, L, C].
        first_index: global row index of ``hr[0]``.
        ratios: the LR ratios to make.
        phases: LR phases per ratio (0 makes none).
        seed: the dataset's base seed (for :func:`phase_offsets`).

    Returns:
        The rows of every LR dataset, keyed by dataset name (``lr/x{r}``,
        ``lr_phases/x{r}``, ``lr_phases/x{r}_offsets``).
    """
    rows: dict[str, np.ndarray] = {}
    for r in ratios:
        rows[f"lr/x{r}"] = np.concatenate([downsample(state[None], r) for state in hr])
        if phases:
            offsets = np.stack(
                [phase_offsets(seed, first_index + j, r, phases) for j in range(len(hr))]
            )
            rows[f"lr_phases/x{r}_offsets"] = offsets
            rows[f"lr_phases/x{r}"] = np.stack(
                [lr_phase_images(state, r, off) for state, off in zip(hr, offsets, strict=True)]
            )
    return rows
