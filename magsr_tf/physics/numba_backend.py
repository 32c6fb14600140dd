"""The "numba" annealer backend: one configuration at a time with the compiled kernels.

Type I runs the kernels of `numba_kernels` exactly as before issue 25 (bit-identical results).
Type II dipolar field. The nearest-neighbour part of the dipolar sum (the strongest couplings,
1/r^3 = 1) is evaluated live inside the separate kernels of `numba_dipolar`; the far part
(all other displacements, one float32 real FFT convolution) is frozen in ``h_ext`` and refreshed
every ``field_refresh`` temperature steps (`Schedule.field_refresh`). ``field_refresh = 0`` is
the scheme before issue 25, kept for comparisons: the whole dipolar field by FFT before every
half-sweep, run with the `numba_kernels` kernels as before (old bits). The measurement behind
the default is in docs/annealer.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import scipy.fft

from magsr_tf.physics import numba_dipolar as nd
from magsr_tf.physics import numba_kernels as nk
from magsr_tf.physics import numpy_backend as npb
from magsr_tf.physics.hamiltonian import TypeI, TypeII, dipolar_kernel, max_torque

__all__ = [
    "RELAX_FIELD_REFRESH",
    "DipolarFFT",
    "Kernels",
    "anneal_one",
    "far_kernel",
    "field_source",
    "kernel_params",
    "relax_one",
    "run_sweeps",
]

logger = logging.getLogger(__name__)

RELAX_FIELD_REFRESH = 4
"""Relaxation sweeps between dipolar-field refreshes."""
NEAR = ((0, 1), (0, -1), (1, 0), (-1, 0))
"""The ``(dy, dx)`` displacements whose dipolar coupling the kernels evaluate live."""


def far_kernel(lattice: int) -> np.ndarray:
    """`dipolar_kernel` without the four nearest-neighbour displacements, float64 ``[4, L, L]``."""
    w = np.array(dipolar_kernel(lattice))
    for dy, dx in NEAR:
        w[:, dy % lattice, dx % lattice] = 0.0
    return w


class DipolarFFT:
    """Dipolar field ``-D sum_j W(r_ij) S_j`` of one configuration ``[L, L, 3]`` (float32 FFT).

    With ``near=True`` the nearest-neighbour displacements are left out (the kernels add them
    live). Single precision: the field only steers the sampler and the relaxation; the final
    torque check uses the float64 `max_torque`.
    """

    def __init__(self, ham: TypeII, lattice: int, near: bool = True):
        w = far_kernel(lattice) if near else dipolar_kernel(lattice)
        kernel = -ham.D * scipy.fft.rfft2(w, axes=(-2, -1))
        self.kxx, self.kyy, self.kzz, self.kxy = (k.astype(np.complex64) for k in kernel)
        self.lattice = lattice
        self.near = near

    def __call__(self, s: np.ndarray) -> np.ndarray:
        f = scipy.fft.rfft2(np.ascontiguousarray(s.transpose(2, 0, 1), dtype=np.float32))
        out = np.empty_like(f)
        out[0] = self.kxx * f[0] + self.kxy * f[1]
        out[1] = self.kxy * f[0] + self.kyy * f[1]
        out[2] = self.kzz * f[2]
        field = scipy.fft.irfft2(out, s=(self.lattice, self.lattice))
        return np.ascontiguousarray(field.transpose(1, 2, 0), dtype=np.float64)


_NO_FIELD = np.zeros((1, 1, 3))


def field_source(ham, lattice: int, near: bool = True) -> tuple[Callable, bool]:
    """Callable giving the frozen external (dipolar) field for a kernel call, and its flag."""
    if isinstance(ham, TypeII):
        return DipolarFFT(ham, lattice, near), True
    return (lambda s: _NO_FIELD), False


def kernel_params(ham) -> tuple[float, float, int, float]:
    """``(J, D, dmi code, K)`` for the `numba_kernels` kernels (Type II: no live dipoles)."""
    if isinstance(ham, TypeI):
        return ham.J, ham.D, 1 if ham.dmi == "interfacial" else 2, 0.0
    return ham.J, 0.0, 0, ham.K


class Kernels:
    """The half-sweep kernels of one Hamiltonian, as ``f(s, parity, beta, h_ext, state)``.

    Type I, and Type II without ``near``: the `numba_kernels` kernels, called with the same
    arguments as before issue 25. Type II with ``near``: the `numba_dipolar` kernels (live
    nearest dipoles, ``h_ext`` the far field).
    """

    def __init__(self, ham, near: bool):
        self.live = isinstance(ham, TypeII) and near
        if self.live:
            J, D, K = ham.J, ham.D, ham.K
            self.heat_bath = lambda s, p, b, h, st: nd.heat_bath_half_sweep(s, p, b, J, D, K, h, st)
            self.over_relax = lambda s, p, b, h, st: nd.over_relax_half_sweep(
                s, p, b, J, D, K, h, st
            )
            self.align = lambda s, p, h: nd.align_half_sweep(s, p, J, D, K, h)
            self.torque = lambda s, h: nd.max_torque(s, J, D, K, h)
            return
        J, D, dmi, K = kernel_params(ham)
        use = isinstance(ham, TypeII)
        self.heat_bath = lambda s, p, b, h, st: nk.heat_bath_half_sweep(
            s, p, b, J, D, dmi, K, h, use, st
        )
        self.over_relax = lambda s, p, b, h, st: nk.over_relax_half_sweep(
            s, p, b, J, D, dmi, K, h, use, st
        )
        self.align = lambda s, p, h: nk.align_half_sweep(s, p, J, D, dmi, K, h, use, 1.0)
        self.torque = lambda s, h: nk.max_torque(s, J, D, dmi, K, h, use)


def run_sweeps(s, ham, betas, over_relax, state, field_refresh, after=None) -> None:
    """Anneal `s` ``[L, L, 3]`` (float64, in place) through one step per inverse temperature.

    A step is a heat-bath sweep then `over_relax` over-relaxation sweeps (checkerboard). Type II:
    the far dipolar field is refreshed every `field_refresh` steps (0: the whole field before
    every half-sweep, the old kernels). `after(k)`, if given, is called after step k.
    """
    near = field_refresh > 0
    field, _ = field_source(ham, s.shape[0], near)
    kernels = Kernels(ham, near)
    h = None
    for k, beta in enumerate(betas):
        if kernels.live:
            if k % field_refresh == 0:
                h = field(s)
            for parity in (0, 1):
                kernels.heat_bath(s, parity, beta, h, state)
            for _ in range(over_relax):
                for parity in (0, 1):
                    kernels.over_relax(s, parity, beta, h, state)
        else:  # the loop of the annealer before issue 25
            for parity in (0, 1):
                kernels.heat_bath(s, parity, beta, field(s), state)
            for _ in range(over_relax):
                for parity in (0, 1):
                    kernels.over_relax(s, parity, beta, field(s), state)
        if after is not None:
            after(k)


def anneal_one(ham, rng, lattice, schedule) -> np.ndarray:
    """Anneals one configuration ``[L, L, 3]`` (random start from `rng`), then relaxes it."""
    s = npb.random_state(rng, lattice)
    state = nk.seed_state(rng)
    betas = 1.0 / schedule.temperatures()
    run_sweeps(s, ham, betas, schedule.over_relax, state, schedule.field_refresh)
    near = schedule.field_refresh > 0
    return relax_one(s, ham, schedule.relax_tol, schedule.relax_max_sweeps, near)[0]


def relax_one(s, ham, tol, max_sweeps, near: bool = True) -> tuple[np.ndarray, int]:
    """Relax one float64 configuration in place; returns it and the number of sweeps used."""
    field, _ = field_source(ham, s.shape[0], near)
    kernels = Kernels(ham, near)
    if max_torque(s[None].astype(np.float32), ham)[0] < tol:
        return s, 0
    sweeps_done = 0
    for _ in range(max_sweeps):
        # The weak dipolar field (Type II) changes little from sweep to sweep during relaxation:
        # refreshing it every RELAX_FIELD_REFRESH sweeps halves the cost without changing the
        # number of sweeps needed (measured, docs/annealer.md); the final checks use a fresh one.
        if sweeps_done % RELAX_FIELD_REFRESH == 0:
            h_ext = field(s)
        sweeps_done += 1
        worst = 0.0
        for parity in (0, 1):
            torque = kernels.align(s, parity, h_ext)
            worst = max(worst, torque)
        # The kernel's torque is measured before turning, so confirm with the torque of the
        # current state (compiled, cheap), then once with the exact float64 field of the
        # float32 state that is returned.
        if worst < tol and kernels.torque(s, field(s)) < tol:
            if max_torque(s[None].astype(np.float32), ham)[0] < tol:
                break
    else:
        logger.warning("relaxation stopped after %d sweeps above tol=%g", max_sweeps, tol)
    logger.debug("relaxed in %d sweeps", sweeps_done)
    return s, sweeps_done
