"""Vectorized NumPy annealer: checkerboard heat bath / over-relaxation batched over configurations.

Private backend of `magsr_tf.physics.anneal` (backend "numpy"), the reference design: NumPy only,
many configurations updated at once. Same moves as the numba kernels (`numba_kernels`), not the
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

    cos(theta) = S . h / |h| from the inverse of its marginal distribution, azimuth 2 pi v in
    the branch-free orthonormal frame of Duff et al., J. Comput. Graph. Tech. 6, 1 (2017).

    Args:
        h: fields ``[3, ...]``.
        beta: inverse temperature.
        u, v: uniform [0, 1) numbers shaped like ``h[0]`` (polar and azimuthal draws).
    """
    hn = np.sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2])
    # beta |h| -> 0 is the uniform limit c = 2 u - 1, which the formula reaches continuously;
    # the floor only avoids 0 / 0 (|h| = 0 needs the neighbours to cancel exactly).
    a = np.maximum(beta * hn, 1e-8)
    w = 1.0 - u  # in (0, 1], so the logarithm stays finite when exp(-2 a) underflows
    c = np.exp(-2.0 * a)
    c *= u
    c += w
    np.log(c, out=c)
    c /= a
    c += 1.0
    np.clip(c, -1.0, 1.0, out=c)
    inv = 1.0 / np.maximum(hn, 1e-300)
    nx, ny, nz = h[0] * inv, h[1] * inv, h[2] * inv
    if not np.all(hn > 0):  # pragma: no cover - measure-zero event
        nz = np.where(hn > 0, nz, 1.0)
    sign = np.copysign(1.0, nz)
    k = -1.0 / (sign + nz)
    b = nx * ny * k
    sin_theta = np.sqrt(np.maximum(0.0, 1.0 - c * c))
    phi = (2.0 * math.pi) * v
    cp = np.cos(phi)
    cp *= sin_theta
    sp = np.sin(phi)
    sp *= sin_theta
    out = np.empty_like(h)
    # e1 = (1 + sign nx^2 k, sign b, -sign nx), e2 = (b, sign + ny^2 k, -ny)
    out[0] = c * nx + cp * (1.0 + sign * nx * nx * k) + sp * b
    out[1] = c * ny + cp * (sign * b) + sp * (sign + ny * ny * k)
    out[2] = c * nz - cp * (sign * nx) - sp * ny
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


def align_half_sweep(q, parity, ham) -> np.ndarray:
    """Zero-temperature step: turn each spin of one sublattice to its h_eff (in place).

    Returns:
        ``[n]`` the largest torque |S x h_eff| of the sublattice before turning.
    """
    aniso = isinstance(ham, TypeII)
    h_dip = dipolar_field_quarters(q, ham) if aniso else None
    worst = np.zeros(q.shape[2])
    for k in SUBLATTICE[parity]:
        h = nn_field(q, k, ham)
        if aniso:
            h += h_dip[k]
            h[2] += 2.0 * ham.K * q[k, 2]
        s = q[k]
        torque2 = (
            (s[1] * h[2] - s[2] * h[1]) ** 2
            + (s[2] * h[0] - s[0] * h[2]) ** 2
            + (s[0] * h[1] - s[1] * h[0]) ** 2
        )
        worst = np.maximum(worst, np.sqrt(torque2.max(axis=(-2, -1))))
        hn = np.sqrt(h[0] * h[0] + h[1] * h[1] + h[2] * h[2])
        q[k] = np.where(hn > 1e-12, h / np.maximum(hn, 1e-300), s)
    return worst


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
]
