"""Spin-map helpers shared by every layer: projection onto physical (unit) spins."""

from __future__ import annotations

import numpy as np


def unit_normalize(spins, epsilon: float = 1e-12) -> np.ndarray:
    """Projects maps onto physical spins.

    Three components: L2 normalization of each site's vector (a zero vector
    stays zero). One component (e.g. m_z): a clip to [-1, 1]. The same
    projection as the SR model's last layer (:class:`magsr_tf.nn.layers.UnitSpin`).

    Returns:
        float32 array of the input's shape.
    """
    spins = np.asarray(spins, dtype=np.float32)
    if spins.shape[-1] == 1:
        return np.clip(spins, -1.0, 1.0)
    norm = np.sqrt(np.sum(spins.astype(np.float64) ** 2, axis=-1, keepdims=True))
    return (spins / np.maximum(norm, np.sqrt(epsilon))).astype(np.float32)
