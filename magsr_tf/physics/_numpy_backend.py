"""Vectorized NumPy annealer: checkerboard heat bath / over-relaxation batched over configurations.

Private backend of `magsr_tf.physics.anneal` (backend "numpy"), the reference design: NumPy only,
many configurations updated at once. Same moves as the numba kernels (`_numba_kernels`), not the
same random stream.

Layout: a batch ``[n, L, L, 3]`` is held as four contiguous "quarters" ``q[4, 3, n, m, m]``
(m = L / 2), quarter ``2 py + px`` holding the sites ``(iy, ix) = (2 i + py, 2 j + px)``. The
checkerboard sublattice of parity p = (ix + iy) % 2 is quarters {0, 3} (p = 0) or {1, 2} (p = 1);
a quarter's four neighbours all lie in the two quarters of the other sublattice, so the field is
computed on the updated sublattice only, from contiguous arrays.

Random numbers: every configuration draws from its own Generator, in a fixed order per
half-sweep, so configuration i depends only on its Generator, whatever the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from magsr_tf.physics.hamiltonian import TypeI, TypeII, dipolar_field

QUARTERS = ((0, 0), (0, 1), (1, 0), (1, 1))
SUBLATTICE = {0: (0, 3), 1: (1, 2)}


def to_quarters(spins: np.ndarray) -> np.ndarray:
    """``[n, L, L, 3]`` -> ``[4, 3, n, L/2, L/2]`` float64 (contiguous)."""
    return np.ascontiguousarray(
        np.stack([np.moveaxis(spins[:, py::2, px::2, :], -1, 0) for py, px in QUARTERS]),
        dtype=np.float64,
    )


def from_quarters(q: np.ndarray) -> np.ndarray:
    """Inverse of `to_quarters`: ``[4, 3, n, m, m]`` -> ``[n, 2m, 2m, 3]``."""
    _, _, n, m, _ = q.shape
    out = np.empty((n, 2 * m, 2 * m, 3), dtype=q.dtype)
    for k, (py, px) in enumerate(QUARTERS):
        out[:, py::2, px::2, :] = np.moveaxis(q[k], 0, -1)
    return out


def _neighbours(q: np.ndarray, k: int):
    """Spins at +x, -x, +y, -y of every site of quarter k, each ``[3, n, m, m]``."""
    py, px = QUARTERS[k]
    other_x = q[2 * py + (1 - px)]
    other_y = q[2 * (1 - py) + px]
    if px == 0:
        xp, xm = other_x, np.roll(other_x, 1, axis=-1)
    else:
        xp, xm = np.roll(other_x, -1, axis=-1), other_x
    if py == 0:
        yp, ym = other_y, np.roll(other_y, 1, axis=-2)
    else:
        yp, ym = np.roll(other_y, -1, axis=-2), other_y
    return xp, xm, yp, ym


def nn_field(q: np.ndarray, k: int, ham) -> np.ndarray:
    """Exchange + DMI field sum_j (J S_j + D_ij x S_j) on quarter k, ``[3, n, m, m]``."""
    xp, xm, yp, ym = _neighbours(q, k)
    h = xp + xm
    h += yp
    h += ym
    h *= ham.J
    if isinstance(ham, TypeI):
        d = ham.D
        if ham.dmi == "interfacial":
            h[0] += d * (xp[2] - xm[2])
            h[1] += d * (yp[2] - ym[2])
            h[2] -= d * (xp[0] - xm[0] + yp[1] - ym[1])
        else:
            h[0] += d * (yp[2] - ym[2])
            h[1] -= d * (xp[2] - xm[2])
            h[2] += d * (xp[1] - xm[1] - yp[0] + ym[0])
    return h


def heat_bath_draw(h: np.ndarray, beta: float, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit vectors drawn from p(S) proportional to exp(beta h . S), by inversion.

    Args:
        h: fields ``[3, ...]``.
        beta: inverse temperature.
        u, v: uniform [0, 1) numbers shaped like ``h[0]`` (polar and azimuthal draws).
    """
    hn = np.sqrt(np.einsum("c...,c...->...", h, h))
    hn = np.maximum(hn, 1e-300)
    a = beta * hn
    small = a < 1e-10
    a_safe = np.where(small, 1.0, a)
    c = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * a_safe)) / a_safe
    c = np.where(small, 2.0 * u - 1.0, np.maximum(c, -1.0))
    n = h / hn
    n = np.where(small, np.array([0.0, 0.0, 1.0]).reshape((3,) + (1,) * (h.ndim - 1)), n)
    nx, ny, nz = n
    far_from_z = np.abs(nz) < 0.9
    inv_xy = 1.0 / np.sqrt(np.where(far_from_z, nx * nx + ny * ny, 1.0))
    inv_yz = 1.0 / np.sqrt(np.where(far_from_z, 1.0, ny * ny + nz * nz))
    e1x = np.where(far_from_z, ny * inv_xy, 0.0)
    e1y = np.where(far_from_z, -nx * inv_xy, nz * inv_yz)
    e1z = np.where(far_from_z, 0.0, -ny * inv_yz)
    st = np.sqrt(np.maximum(0.0, 1.0 - c * c))
    phi = (2.0 * math.pi) * v
    cp = st * np.cos(phi)
    sp = st * np.sin(phi)
    out = np.empty_like(h)
    # e2 = n x e1
    out[0] = c * nx + cp * e1x + sp * (ny * e1z - nz * e1y)
    out[1] = c * ny + cp * e1y + sp * (nz * e1x - nx * e1z)
    out[2] = c * nz + cp * e1z + sp * (nx * e1y - ny * e1x)
    return out


def _draw_uniforms(rngs: Sequence[np.random.Generator], count: int, m: int) -> np.ndarray:
    """``[count, 2, n, m, m]`` uniforms, configuration i's block from rngs[i] only."""
    per_config = [rng.random((count, 2, m, m)) for rng in rngs]
    return np.stack(per_config, axis=2)


def dipolar_field_quarters(q: np.ndarray, ham: TypeII) -> np.ndarray:
    """Dipolar field in the quarter layout (computed on the full lattice by FFT)."""
    return to_quarters(dipolar_field(from_quarters(q), ham))


def heat_bath_half_sweep(q, parity, beta, ham, rngs) -> None:
    """Heat-bath update of the sublattice `parity` of all configurations (in place).

    Type II: the dipolar field is frozen at the start of the half-sweep; the anisotropy enters
    through a Metropolis acceptance min(1, exp(beta K (S'_z^2 - S_z^2))) of the draw about the
    linear field (exact for the local conditional law exp(beta (h . S + K S_z^2))).
    """
    m = q.shape[-1]
    aniso = isinstance(ham, TypeII)
    rand = _draw_uniforms(rngs, 3 if aniso else 2, m)
    h_dip = dipolar_field_quarters(q, ham) if aniso else None
    for t, k in enumerate(SUBLATTICE[parity]):
        h = nn_field(q, k, ham)
        if aniso:
            h += h_dip[k]
        new = heat_bath_draw(h, beta, rand[0, t], rand[1, t])
        if aniso:
            old_z = q[k, 2]
            accept = rand[2, t] < np.exp(np.minimum(0.0, beta * ham.K * (new[2] ** 2 - old_z**2)))
            q[k] = np.where(accept, new, q[k])
        else:
            q[k] = new


def over_relax_half_sweep(q, parity, beta, ham, rngs) -> None:
    """Over-relaxation S -> 2 (S . h) h / |h|^2 - S of one sublattice (in place).

    Type II: accepted with min(1, exp(beta K (S'_z^2 - S_z^2))) (the reflection keeps h . S).
    """
    m = q.shape[-1]
    aniso = isinstance(ham, TypeII)
    rand = _draw_uniforms(rngs, 1, m) if aniso else None
    h_dip = dipolar_field_quarters(q, ham) if aniso else None
    for t, k in enumerate(SUBLATTICE[parity]):
        h = nn_field(q, k, ham)
        if aniso:
            h += h_dip[k]
        s = q[k]
        h2 = np.maximum(np.einsum("c...,c...->...", h, h), 1e-300)
        new = (2.0 * np.einsum("c...,c...->...", s, h) / h2) * h - s
        new /= np.sqrt(np.einsum("c...,c...->...", new, new))
        if aniso:
            accept = rand[0, t] < np.exp(np.minimum(0.0, beta * ham.K * (new[2] ** 2 - s[2] ** 2)))
            q[k] = np.where(accept, new, s)
        else:
            q[k] = new


def align_half_sweep(q, parity, ham) -> None:
    """Zero-temperature step: turn each spin of one sublattice to its h_eff (in place)."""
    aniso = isinstance(ham, TypeII)
    h_dip = dipolar_field_quarters(q, ham) if aniso else None
    for k in SUBLATTICE[parity]:
        h = nn_field(q, k, ham)
        if aniso:
            h += h_dip[k]
            h[2] += 2.0 * ham.K * q[k, 2]
        hn = np.sqrt(np.einsum("c...,c...->...", h, h))
        q[k] = np.where(hn > 1e-12, h / np.maximum(hn, 1e-300), q[k])


def random_quarters(rngs: Sequence[np.random.Generator], lattice: int) -> np.ndarray:
    """Independent uniformly random unit-vector states, one per Generator, in quarter layout."""
    spins = np.stack([random_state(rng, lattice) for rng in rngs])
    return to_quarters(spins)


def random_state(rng: np.random.Generator, lattice: int) -> np.ndarray:
    """A uniformly random unit-vector state ``[L, L, 3]`` float64 (normalized Gaussian)."""
    s = rng.normal(size=(lattice, lattice, 3))
    s /= np.linalg.norm(s, axis=-1, keepdims=True)
    return s


__all__ = [
    "to_quarters",
    "from_quarters",
    "nn_field",
    "heat_bath_draw",
    "heat_bath_half_sweep",
    "over_relax_half_sweep",
    "align_half_sweep",
    "random_quarters",
    "random_state",
    "TypeI",
]
