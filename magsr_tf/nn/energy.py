"""Differentiable spin Hamiltonians in TensorFlow: the physics prior of SR.

The LR-only loss cannot see the downsizer's null space; the Hamiltonian that
made the data can. This module evaluates the energies of
:mod:`magsr_tf.physics.hamiltonian` on TensorFlow tensors so that they can be
minimized by gradient descent (``magsr-tf refine``) or added to the training
loss (``fit --physics-weight``).

Conventions are those of :mod:`magsr_tf.physics.hamiltonian`: spins
``[n, H, W, 3]`` indexed ``[k, iy, ix, c]``, components (x, y, z), each
nearest-neighbour bond counted once,

* Type I: ``H = -J sum_<ij> S_i.S_j + sum_<ij> D_ij.(S_i x S_j)`` with
  interfacial ``D_ij = D (z x r_ij)`` or bulk ``D_ij = D r_ij`` DMI;
* Type II: exchange + ``D sum_{i<j} [S_i.S_j - 3 (S_i.r)(S_j.r)] / r^3`` +
  ``-K sum_i S_iz^2``, the dipolar sum by FFT convolution (no self term).

Boundaries: ``"periodic"`` (simulated lattices: every bond wraps; the dipolar
sum uses the minimum image with tied images averaged, exactly as the NumPy
annealer) or ``"open"`` (microscope images: only bonds inside the image, the
dipolar sum over the pairs inside the image by a zero-padded FFT).

The energy is returned **per spin** (E / (H W)), the scale on which it enters
both the refinement objective and the training loss.
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.physics.hamiltonian import TypeI, TypeII, dipolar_kernel_grid
from magsr_tf.physics.hamiltonian_io import resolve_hamiltonian

__all__ = ["BOUNDARIES", "SpinEnergy"]

BOUNDARIES = ("periodic", "open")


class SpinEnergy:
    """Energy per spin of spin maps under a Hamiltonian, as a differentiable TF function.

    ``SpinEnergy(ham)(spins)`` is ``physics.hamiltonian.energy_per_spin(spins, ham)``
    for periodic boundaries, on TensorFlow tensors, with gradients. Its gradient
    with respect to the spins (times the number of sites) is minus the effective
    field ``h_eff`` of :func:`magsr_tf.physics.hamiltonian.local_field`.

    Args:
        hamiltonian: anything
            :func:`magsr_tf.physics.hamiltonian_io.resolve_hamiltonian` accepts.
        boundary: ``"periodic"`` or ``"open"`` (see the module docstring).
        dtype: ``"float32"`` (training, refinement) or ``"float64"`` (tests).

    Call:
        spins: ``[n, H, W, 3]`` tensor (need not be unit length; the energy is
        the bilinear/quadratic form evaluated as is). Returns ``[n]``.
    """

    def __init__(self, hamiltonian, boundary: str = "periodic", dtype: str = "float32"):
        if boundary not in BOUNDARIES:
            raise MagsrError(
                f"boundary must be one of {BOUNDARIES}. Received: boundary={boundary!r}"
            )
        if dtype not in ("float32", "float64"):
            raise MagsrError(f"dtype must be float32 or float64. Received: dtype={dtype!r}")
        self.hamiltonian = resolve_hamiltonian(hamiltonian)
        self.boundary = boundary
        self.dtype = dtype
        self._kernels: dict[tuple[int, int], object] = {}
        self._nn_kernel = None

    def __repr__(self) -> str:
        return f"SpinEnergy({self.hamiltonian!r}, boundary={self.boundary!r}, dtype={self.dtype!r})"

    # -- pieces ---------------------------------------------------------------

    def _coupling_kernel(self):
        """3x3 convolution kernel of the nearest-neighbour couplings.

        ``E_nn = 1/2 sum_i sum_delta S_i^T C_delta S_{i+delta}`` over the four
        neighbours, with ``C_delta = -J 1 - [D_delta]_x`` (``[D]_x`` the cross-product
        matrix, since D.(S_i x S_j) = S_i.(S_j x D)); ``C_{-delta} = C_delta^T``. A
        cross-correlation ``f_a(i) = sum_{delta, b} W[delta, b, a] S_b(i + delta)``
        with ``W[delta] = C_delta^T`` gives ``f = sum_delta C_delta S_{i+delta}``.
        """
        ham = self.hamiltonian
        kern = np.zeros((3, 3, 3, 3))
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            c = -ham.J * np.eye(3)
            if isinstance(ham, TypeI) and ham.D != 0.0:
                r_hat = np.array([dx, dy, 0.0])
                d = np.cross([0.0, 0.0, 1.0], r_hat) if ham.dmi == "interfacial" else r_hat
                d = ham.D * d
                cross = np.array([[0.0, -d[2], d[1]], [d[2], 0.0, -d[0]], [-d[1], d[0], 0.0]])
                c = c - cross
            kern[1 + dy, 1 + dx] = c.T
        return kern

    def _nearest_neighbour(self, s):
        """Exchange (+ DMI for Type I) energy summed per configuration.

        One 3x3 convolution (3 -> 3 channels) of the padded map gives every
        site's neighbour sum; on CPU this is several times faster than
        slicing components and bonds apart.
        """
        import tensorflow as tf

        if self._nn_kernel is None:
            self._nn_kernel = self._coupling_kernel()
        if self.boundary == "periodic":
            # Slices + concat (not tf.roll) keep the graph free of Flex ops.
            p = tf.concat([s[:, -1:], s, s[:, :1]], axis=1)
            p = tf.concat([p[:, :, -1:], p, p[:, :, :1]], axis=2)
        else:
            p = tf.pad(s, [[0, 0], [1, 1], [1, 1], [0, 0]])
        kernel = tf.constant(self._nn_kernel, dtype=self.dtype)  # NumPy cache: graph-safe
        f = tf.nn.conv2d(p, kernel, strides=1, padding="VALID")
        return 0.5 * tf.reduce_sum(s * f, axis=[1, 2, 3])

    def _kernel_fft(self, h: int, w: int):
        import tensorflow as tf

        key = (h, w)
        if key not in self._kernels:
            kern = dipolar_kernel_grid(h, w, self.boundary)
            k_hat = np.fft.rfft2(kern, axes=(-2, -1))
            self._kernels[key] = k_hat
        ctype = tf.complex64 if self.dtype == "float32" else tf.complex128
        # The cache holds NumPy arrays: a cached tensor would be captured across graphs.
        return tf.constant(self._kernels[key], dtype=ctype)

    def _dipolar(self, s):
        """``D/2 sum_i S_i . (W * S)_i`` per configuration (the pair sum, each pair once)."""
        import tensorflow as tf

        h, w = int(s.shape[1]), int(s.shape[2])
        kxx, kyy, kzz, kxy = tf.unstack(self._kernel_fft(h, w))
        comps = tf.transpose(s, [0, 3, 1, 2])  # [n, 3, H, W]
        if self.boundary == "open":
            comps = tf.pad(comps, [[0, 0], [0, 0], [0, h], [0, w]])
        fft_len = [int(comps.shape[2]), int(comps.shape[3])]
        s_hat = tf.signal.rfft2d(comps, fft_length=fft_len)
        fx = tf.signal.irfft2d(kxx * s_hat[:, 0] + kxy * s_hat[:, 1], fft_length=fft_len)
        fy = tf.signal.irfft2d(kxy * s_hat[:, 0] + kyy * s_hat[:, 1], fft_length=fft_len)
        fz = tf.signal.irfft2d(kzz * s_hat[:, 2], fft_length=fft_len)
        conv = tf.stack([fx, fy, fz], axis=1)[:, :, :h, :w]  # (W * S), [n, 3, H, W]
        return (
            0.5
            * self.hamiltonian.D
            * tf.reduce_sum(conv * tf.transpose(s, [0, 3, 1, 2]), axis=[1, 2, 3])
        )

    # -- public -----------------------------------------------------------------

    def total(self, spins):
        """Total energy ``[n]`` of spin maps ``[n, H, W, 3]``."""
        import tensorflow as tf

        s = tf.convert_to_tensor(spins)
        if s.dtype != self.dtype:
            s = tf.cast(s, self.dtype)
        if s.shape.rank != 4 or s.shape[-1] != 3:
            raise MagsrError(f"spins must have shape [n, H, W, 3]. Received: shape={s.shape}")
        if s.shape[1] is None or s.shape[2] is None:
            raise MagsrError("the energy needs a static lattice size (H and W)")
        e = self._nearest_neighbour(s)
        ham = self.hamiltonian
        if isinstance(ham, TypeII):
            if ham.D != 0.0:
                e += self._dipolar(s)
            if ham.K != 0.0:
                e -= ham.K * tf.reduce_sum(tf.square(s[..., 2]), axis=[1, 2])
        return e

    def __call__(self, spins):
        """Energy per spin ``[n]`` (total energy over H W sites)."""
        e = self.total(spins)
        shape = spins.shape
        return e / float(int(shape[1]) * int(shape[2]))
