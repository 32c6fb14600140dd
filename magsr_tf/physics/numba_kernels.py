"""Numba kernels of the annealer: checkerboard half-sweeps on one configuration.

Private backend of `magsr_tf.physics.anneal` (backend "numba"). Each kernel updates one
sublattice (sites with (ix + iy) % 2 == parity) of a single float64 configuration ``s[L, L, 3]``
in place, visiting sites in row-major order and drawing random numbers from the configuration's
own xoshiro256+ stream (state ``uint64[4]``, seeded from the configuration's Generator by
`seed_state`; inlined it is several times cheaper than numba's Generator support). With
nearest-neighbour couplings only, the sites of one sublattice are independent given the other,
so a checkerboard half-sweep is an exact Gibbs update; the dipolar field (Type II) is frozen
during a half-sweep and passed in as ``h_ext``.

DMI codes: 0 none, 1 interfacial (D_ij = D z x r_ij), 2 bulk (D_ij = D r_ij).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, uint64

TWO_PI = 2.0 * math.pi


def seed_state(rng: np.random.Generator) -> np.ndarray:
    """A xoshiro256+ state (4 nonzero uint64 words) drawn from `rng`."""
    return rng.integers(1, 2**63, size=4, dtype=np.uint64)


@njit(inline="always", cache=True)
def _rotl(x, k):
    return (x << uint64(k)) | (x >> uint64(64 - k))


@njit(inline="always", cache=True)
def _uniform(state):
    """Next double in [0, 1) from xoshiro256+ (Blackman and Vigna 2018; top 53 bits)."""
    s0 = state[0]
    s1 = state[1]
    s2 = state[2]
    s3 = state[3]
    result = s0 + s3
    t = s1 << uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return (result >> uint64(11)) * (1.0 / 9007199254740992.0)


@njit(inline="always", cache=True)
def _nn_field(s, y, x, n, J, D, dmi):
    """Exchange + DMI field sum_j (J S_j + D_ij x S_j) at site (y, x)."""
    yp = y + 1 if y + 1 < n else 0
    ym = y - 1 if y > 0 else n - 1
    xp = x + 1 if x + 1 < n else 0
    xm = x - 1 if x > 0 else n - 1
    hx = J * (s[y, xp, 0] + s[y, xm, 0] + s[yp, x, 0] + s[ym, x, 0])
    hy = J * (s[y, xp, 1] + s[y, xm, 1] + s[yp, x, 1] + s[ym, x, 1])
    hz = J * (s[y, xp, 2] + s[y, xm, 2] + s[yp, x, 2] + s[ym, x, 2])
    if dmi == 1:
        hx += D * (s[y, xp, 2] - s[y, xm, 2])
        hy += D * (s[yp, x, 2] - s[ym, x, 2])
        hz -= D * (s[y, xp, 0] - s[y, xm, 0] + s[yp, x, 1] - s[ym, x, 1])
    elif dmi == 2:
        hx += D * (s[yp, x, 2] - s[ym, x, 2])
        hy -= D * (s[y, xp, 2] - s[y, xm, 2])
        hz += D * (s[y, xp, 1] - s[y, xm, 1] - s[yp, x, 0] + s[ym, x, 0])
    return hx, hy, hz


@njit(inline="always", cache=True, fastmath=True)
def _heat_bath_draw(hx, hy, hz, beta, state):
    """A unit vector drawn from p(S) proportional to exp(beta h . S).

    Polar part by inversion of the marginal of cos(theta) = S . h / |h|; azimuth from a point
    drawn uniformly in the unit disk by rejection (no trigonometric calls).
    """
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    u = 1.0 - _uniform(state)  # in (0, 1]
    a = beta * hn
    if a > 1e-10:
        if a > 20.0:  # exp(-2 a) < 5e-18 is below the resolution of u
            c = 1.0 + math.log(u) / a
        else:
            c = 1.0 + math.log(u + (1.0 - u) * math.exp(-2.0 * a)) / a
        if c < -1.0:
            c = -1.0
        inv = 1.0 / hn
        nx = hx * inv
        ny = hy * inv
        nz = hz * inv
    else:
        c = 2.0 * u - 1.0
        nx = 0.0
        ny = 0.0
        nz = 1.0
    sin_theta = math.sqrt(max(0.0, 1.0 - c * c))
    while True:
        p = 2.0 * _uniform(state) - 1.0
        q = 2.0 * _uniform(state) - 1.0
        r2 = p * p + q * q
        if 0.0 < r2 <= 1.0:
            break
    f = sin_theta / math.sqrt(r2)
    cp = p * f
    sp = q * f
    # Orthonormal frame (e1, e2) perpendicular to n, built from whichever axis is far from n.
    if abs(nz) < 0.9:
        inv = 1.0 / math.sqrt(nx * nx + ny * ny)
        e1x = ny * inv
        e1y = -nx * inv
        e1z = 0.0
    else:
        inv = 1.0 / math.sqrt(ny * ny + nz * nz)
        e1x = 0.0
        e1y = nz * inv
        e1z = -ny * inv
    e2x = ny * e1z - nz * e1y
    e2y = nz * e1x - nx * e1z
    e2z = nx * e1y - ny * e1x
    return (
        c * nx + cp * e1x + sp * e2x,
        c * ny + cp * e1y + sp * e2y,
        c * nz + cp * e1z + sp * e2z,
    )


@njit(cache=True, fastmath=True)
def heat_bath_half_sweep(s, parity, beta, J, D, dmi, K, h_ext, use_h_ext, state):
    """Heat-bath update of one sublattice.

    Without anisotropy (K == 0) the new spin is drawn exactly from exp(beta h . S). With K != 0
    the draw about the linear field h is a proposal accepted with probability
    min(1, exp(beta K (S'_z^2 - S_z^2))): an independence Metropolis step whose stationary law is
    exactly exp(beta (h . S + K S_z^2)).

    Returns:
        Number of accepted moves.
    """
    n = s.shape[0]
    accepted = 0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_field(s, y, x, n, J, D, dmi)
            if use_h_ext:
                hx += h_ext[y, x, 0]
                hy += h_ext[y, x, 1]
                hz += h_ext[y, x, 2]
            sx, sy, sz = _heat_bath_draw(hx, hy, hz, beta, state)
            if K != 0.0:
                old_z = s[y, x, 2]
                d_aniso = beta * K * (sz * sz - old_z * old_z)
                if d_aniso < 0.0 and _uniform(state) >= math.exp(d_aniso):
                    continue
            s[y, x, 0] = sx
            s[y, x, 1] = sy
            s[y, x, 2] = sz
            accepted += 1
    return accepted


@njit(cache=True, fastmath=True)
def over_relax_half_sweep(s, parity, beta, J, D, dmi, K, h_ext, use_h_ext, state):
    """Over-relaxation of one sublattice: S -> 2 (S . h) h / |h|^2 - S.

    The reflection keeps h . S, hence the exchange/DMI/dipolar energy, and is its own inverse
    (a microcanonical, detailed-balance move). The anisotropy energy changes; with K != 0 the
    reflection is accepted with min(1, exp(beta K (S'_z^2 - S_z^2))).

    Returns:
        Number of accepted moves.
    """
    n = s.shape[0]
    accepted = 0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_field(s, y, x, n, J, D, dmi)
            if use_h_ext:
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
                if d_aniso < 0.0 and _uniform(state) >= math.exp(d_aniso):
                    continue
            # Renormalize so that rounding errors do not accumulate over many reflections.
            inv = 1.0 / math.sqrt(sx * sx + sy * sy + sz * sz)
            s[y, x, 0] = sx * inv
            s[y, x, 1] = sy * inv
            s[y, x, 2] = sz * inv
            accepted += 1
    return accepted


@njit(cache=True)
def _align_sites(s, parity, J, D, dmi, K, h_ext, use_h_ext, omega, turn):
    """Largest squared torque |S x h_eff|^2 on one sublattice, each spin turned if `turn`.

    The one field/torque loop behind `align_half_sweep` (turn) and `max_torque` (look only).
    Shared as a whole loop rather than as an ``inline="always"`` per-site helper: numba keeps
    reference-count updates of the arrays passed to such a helper inside the loop, which made
    both callers over two times slower.
    """
    n = s.shape[0]
    worst = 0.0
    for y in range(n):
        for x in range((y + parity) % 2, n, 2):
            hx, hy, hz = _nn_field(s, y, x, n, J, D, dmi)
            if use_h_ext:
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
            # Successive over-relaxation: step omega times the way to the field direction.
            nx = ox + omega * (hx / hn - ox)
            ny = oy + omega * (hy / hn - oy)
            nz = oz + omega * (hz / hn - oz)
            inv = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
            s[y, x, 0] = nx * inv
            s[y, x, 1] = ny * inv
            s[y, x, 2] = nz * inv
    return worst


@njit(cache=True)
def align_half_sweep(s, parity, J, D, dmi, K, h_ext, use_h_ext, omega):
    """Zero-temperature relaxation of one sublattice: each spin turned to its h_eff.

    h_eff includes the anisotropy field 2 K S_z z (at the spin's current S_z) and ``h_ext``.

    Returns:
        The largest torque |S x h_eff| met before turning (a convergence measure).
    """
    return math.sqrt(_align_sites(s, parity, J, D, dmi, K, h_ext, use_h_ext, omega, True))


@njit(cache=True)
def nn_field_array(s, J, D, dmi):
    """Exchange + DMI field of every site (testing aid for the kernels' field formula)."""
    n = s.shape[0]
    out = np.empty_like(s)
    for y in range(n):
        for x in range(n):
            hx, hy, hz = _nn_field(s, y, x, n, J, D, dmi)
            out[y, x, 0] = hx
            out[y, x, 1] = hy
            out[y, x, 2] = hz
    return out


@njit(cache=True)
def max_torque(s, J, D, dmi, K, h_ext, use_h_ext):
    """Largest |S x h_eff| over the lattice (h_eff with 2 K S_z z and ``h_ext``).

    Without turning, the two sublattices together visit every site once.
    """
    even = _align_sites(s, 0, J, D, dmi, K, h_ext, use_h_ext, 0.0, False)
    odd = _align_sites(s, 1, J, D, dmi, K, h_ext, use_h_ext, 0.0, False)
    return math.sqrt(max(even, odd))
