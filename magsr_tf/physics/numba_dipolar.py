"""Numba kernels of the Type II annealer with the nearest-neighbour dipoles evaluated live.

Private backend of `magsr_tf.physics.numba_backend`. Same checkerboard half-sweeps as
`numba_kernels` (same site order, same random stream use, same moves), but the field of a site is
exchange plus the four nearest-neighbour dipolar couplings (`_nn_dipolar_field`, the strongest
dipoles, 1/r^3 = 1), computed from the current neighbours; the rest of the dipolar sum (the far
field) is frozen in ``h_ext`` and refreshed by the driver every ``Schedule.field_refresh`` steps.

Why these kernels are separate functions rather than a DMI code of `numba_kernels._nn_field`:
the Type I kernels are inlined and compiled with ``fastmath``, and adding a branch to the shared
field function changed the machine code LLVM generates for Type I as well, so Type I anneals were
no longer bit-identical to the data already made (two 64 x 64 states differed by up to 1.99;
moving the branch into a dispatch function did not help). The Type I kernels therefore keep
their source unchanged and only the inlined random-number helpers (`_uniform`,
`_heat_bath_draw`) are shared; the squeezed Metropolis test `_reject` is used here only. Pinned
by ``tests/test_anneal.py::test_type_i_bits_are_pinned``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from magsr_tf.physics.numba_kernels import _heat_bath_draw, _uniform

__all__ = [
    "align_half_sweep",
    "heat_bath_half_sweep",
    "max_torque",
    "nn_dipolar_field_array",
    "over_relax_half_sweep",
]


@njit(inline="always", cache=True, fastmath=True)
def _reject(d, state):
    """True with probability 1 - exp(d) for d < 0 (a Metropolis rejection; one uniform drawn).

    Squeezed between 1 + d <= exp(d) <= 1 / (1 - d): the exponential is evaluated only for
    uniforms between the two bounds, which saves most of the anisotropy's cost.
    """
    u = _uniform(state)
    if u < 1.0 + d:
        return False
    if u * (1.0 - d) >= 1.0:
        return True
    return u >= math.exp(d)


@njit(inline="always", cache=True)
def _nn_dipolar_field(s, y, x, n, J, D):
    """Exchange + nearest-neighbour dipolar field sum_j (J S_j - D W(r_ij) S_j) at site (y, x).

    W = diag(-2, 1, 1) along x and diag(1, -2, 1) along y; the rest of the dipolar sum comes in
    through ``h_ext``.
    """
    yp = y + 1 if y + 1 < n else 0
    ym = y - 1 if y > 0 else n - 1
    xp = x + 1 if x + 1 < n else 0
    xm = x - 1 if x > 0 else n - 1
    hx = J * (s[y, xp, 0] + s[y, xm, 0] + s[yp, x, 0] + s[ym, x, 0])
    hy = J * (s[y, xp, 1] + s[y, xm, 1] + s[yp, x, 1] + s[ym, x, 1])
    hz = J * (s[y, xp, 2] + s[y, xm, 2] + s[yp, x, 2] + s[ym, x, 2])
    hx += D * (2.0 * (s[y, xp, 0] + s[y, xm, 0]) - (s[yp, x, 0] + s[ym, x, 0]))
    hy += D * (2.0 * (s[yp, x, 1] + s[ym, x, 1]) - (s[y, xp, 1] + s[y, xm, 1]))
    hz -= D * (s[y, xp, 2] + s[y, xm, 2] + s[yp, x, 2] + s[ym, x, 2])
    return hx, hy, hz


@njit(cache=True, fastmath=True)
def heat_bath_half_sweep(s, parity, beta, J, D, K, h_ext, state):
    """Heat-bath update of one sublattice (as `numba_kernels.heat_bath_half_sweep`).

    The draw from exp(beta h . S) about the linear field h (exchange, live nearest dipoles,
    frozen far field ``h_ext``) is a proposal accepted with min(1, exp(beta K (S'_z^2 - S_z^2))).

    Returns:
        Number of accepted moves.
    """
    n = s.shape[0]
    accepted = 0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_dipolar_field(s, y, x, n, J, D)
            hx += h_ext[y, x, 0]
            hy += h_ext[y, x, 1]
            hz += h_ext[y, x, 2]
            sx, sy, sz = _heat_bath_draw(hx, hy, hz, beta, state)
            if K != 0.0:
                old_z = s[y, x, 2]
                d_aniso = beta * K * (sz * sz - old_z * old_z)
                if d_aniso < 0.0 and _reject(d_aniso, state):
                    continue
            s[y, x, 0] = sx
            s[y, x, 1] = sy
            s[y, x, 2] = sz
            accepted += 1
    return accepted


@njit(cache=True, fastmath=True)
def over_relax_half_sweep(s, parity, beta, J, D, K, h_ext, state):
    """Over-relaxation of one sublattice (as `numba_kernels.over_relax_half_sweep`).

    Returns:
        Number of accepted moves.
    """
    n = s.shape[0]
    accepted = 0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_dipolar_field(s, y, x, n, J, D)
            hx += h_ext[y, x, 0]
            hy += h_ext[y, x, 1]
            hz += h_ext[y, x, 2]
            h2 = hx * hx + hy * hy + hz * hz
            if h2 < 1e-20:
                continue
            ox = s[y, x, 0]
            oy = s[y, x, 1]
            oz = s[y, x, 2]
            f = 2.0 * (ox * hx + oy * hy + oz * hz) / h2
            sx = f * hx - ox
            sy = f * hy - oy
            sz = f * hz - oz
            if K != 0.0:
                d_aniso = beta * K * (sz * sz - oz * oz)
                if d_aniso < 0.0 and _reject(d_aniso, state):
                    continue
            inv = 1.0 / math.sqrt(sx * sx + sy * sy + sz * sz)
            s[y, x, 0] = sx * inv
            s[y, x, 1] = sy * inv
            s[y, x, 2] = sz * inv
            accepted += 1
    return accepted


@njit(cache=True)
def _align_sites(s, parity, J, D, K, h_ext, turn):
    """Largest squared torque on one sublattice, each spin turned to h_eff if `turn`."""
    n = s.shape[0]
    worst = 0.0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_dipolar_field(s, y, x, n, J, D)
            hx += h_ext[y, x, 0]
            hy += h_ext[y, x, 1]
            hz += h_ext[y, x, 2]
            ox = s[y, x, 0]
            oy = s[y, x, 1]
            oz = s[y, x, 2]
            hz += 2.0 * K * oz
            tx = oy * hz - oz * hy
            ty = oz * hx - ox * hz
            tz = ox * hy - oy * hx
            t2 = tx * tx + ty * ty + tz * tz
            if t2 > worst:
                worst = t2
            if not turn:
                continue
            hn = math.sqrt(hx * hx + hy * hy + hz * hz)
            if hn < 1e-12:
                continue
            s[y, x, 0] = hx / hn
            s[y, x, 1] = hy / hn
            s[y, x, 2] = hz / hn
    return worst


@njit(cache=True)
def align_half_sweep(s, parity, J, D, K, h_ext):
    """Zero-temperature relaxation of one sublattice: each spin turned to its h_eff.

    Returns:
        The largest torque |S x h_eff| met before turning.
    """
    return math.sqrt(_align_sites(s, parity, J, D, K, h_ext, True))


@njit(cache=True)
def max_torque(s, J, D, K, h_ext):
    """Largest |S x h_eff| over the lattice (h_eff with 2 K S_z z, live near dipoles, ``h_ext``)."""
    return math.sqrt(
        max(_align_sites(s, 0, J, D, K, h_ext, False), _align_sites(s, 1, J, D, K, h_ext, False))
    )


@njit(cache=True)
def nn_dipolar_field_array(s, J, D):
    """Exchange + nearest-neighbour dipolar field of every site (testing aid)."""
    n = s.shape[0]
    out = np.empty_like(s)
    for y in range(n):
        for x in range(n):
            hx, hy, hz = _nn_dipolar_field(s, y, x, n, J, D)
            out[y, x, 0] = hx
            out[y, x, 1] = hy
            out[y, x, 2] = hz
    return out
