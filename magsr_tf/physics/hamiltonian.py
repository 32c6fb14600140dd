"""Spin Hamiltonians of the two data sets (Lee et al., Sci. Rep. 13, 11526 (2023), Experimental).

Conventions (fixed here, used by every module):

- Spins are classical unit 3-vectors on an L x L square lattice with periodic boundaries, stored
  as arrays ``[n, L, L, 3]``; index ``[k, iy, ix, c]`` is configuration ``k``, the site at
  position ``r = (ix, iy)`` (lattice constant 1) and component ``c`` in (x, y, z).
- Nearest-neighbour bonds are counted once each.

Type I (labyrinths)::

    H = -J sum_<ij> S_i . S_j + sum_<ij> D_ij . (S_i x S_j)

with interfacial (Neel) DMI ``D_ij = D (z x r_ij)`` by default, bulk (Bloch) ``D_ij = D r_ij`` as an
option, where ``r_ij`` is the unit vector from site i to site j. The ideal single spiral has wave
number ``q = atan(D / J)`` and energy ``-J - sqrt(J^2 + D^2)`` per spin.

Type II (domains and thin walls)::

    H = -J sum_<ij> S_i . S_j
        + D sum_{i<j} [S_i . S_j - 3 (S_i . r_ij)(S_j . r_ij)] / r_ij^3
        - K sum_i S_iz^2

The dipolar sum runs over all pairs of the periodic lattice with the minimum-image displacement
(no self term). When a displacement component equals L/2 the images at +L/2 and -L/2 are equally
near; the pair then uses the average of the tied images' couplings, which keeps the kernel
symmetric under x -> -x and y -> -y. The dipolar field is a periodic convolution computed by FFT
with a precomputed kernel (`dipolar_kernel`).

The effective field is ``h_eff = -dH/dS``; for Type II it contains ``2 K S_z z`` from the
anisotropy.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np

from magsr_tf.errors import MagsrError

__all__ = [
    "TypeI",
    "TypeII",
    "make_hamiltonian",
    "energy",
    "energy_per_spin",
    "local_field",
    "max_torque",
    "hamiltonian_attrs",
    "dipolar_kernel",
    "dipolar_kernel_grid",
    "dipolar_field",
    "check_spins",
    "delta_energy",
]

DMI_KINDS = ("interfacial", "bulk")


@dataclass(frozen=True)
class TypeI:
    """Exchange + nearest-neighbour DMI (the paper's Type I, labyrinth textures).

    Attributes:
        J: Ferromagnetic exchange constant (energy unit).
        D: DMI strength |D_ij|; the spiral wave number is atan(D / J) rad/site.
        dmi: "interfacial" (Neel, D_ij = D z x r_ij) or "bulk" (Bloch, D_ij = D r_ij).
    """

    J: float = 1.0
    D: float = 0.3
    dmi: str = "interfacial"

    def __post_init__(self) -> None:
        if self.dmi not in DMI_KINDS:
            raise MagsrError(f"dmi must be one of {DMI_KINDS}. Received: dmi={self.dmi!r}")
        if not (math.isfinite(self.J) and math.isfinite(self.D)):
            raise MagsrError(f"J and D must be finite. Received: J={self.J}, D={self.D}")

    @property
    def kind(self) -> str:
        return "typeI"


@dataclass(frozen=True)
class TypeII:
    """Exchange + long-range dipolar + easy-axis anisotropy (the paper's Type II, domains).

    Attributes:
        J: Ferromagnetic exchange constant (energy unit).
        D: Dipolar strength; E_dip = D sum_{i<j} [S_i.S_j - 3 (S_i.r)(S_j.r)] / r^3.
        K: Easy-axis anisotropy, energy -K sum S_z^2. With D = 0.03 the dipolar shape anisotropy
            of the monolayer (about 0.20 per spin) nearly cancels K = 0.215.
    """

    J: float = 1.0
    D: float = 0.03
    K: float = 0.215

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) for v in (self.J, self.D, self.K)):
            raise MagsrError(
                f"J, D and K must be finite. Received: J={self.J}, D={self.D}, K={self.K}"
            )

    @property
    def kind(self) -> str:
        return "typeII"


Hamiltonian = TypeI | TypeII


def make_hamiltonian(kind: str) -> Hamiltonian:
    """The paper's Hamiltonian by name: "typeI" or "typeII" (case-insensitive).

    Raises:
        MagsrError: for any other name.
    """
    key = str(kind).strip().lower().replace("_", "").replace("-", "")
    if key in ("typei", "type1", "i", "1"):
        return TypeI()
    if key in ("typeii", "type2", "ii", "2"):
        return TypeII()
    raise MagsrError(f"Unknown Hamiltonian kind; use 'typeI' or 'typeII'. Received: kind={kind!r}")


def hamiltonian_attrs(ham: Hamiltonian) -> dict:
    """JSON-able description of `ham` (for HDF5 attributes)."""
    attrs = {"kind": ham.kind, **asdict(ham)}
    if isinstance(ham, TypeII):
        attrs["dipolar_convention"] = "minimum image, tied images averaged, no self term, FFT"
    return attrs


def check_spins(spins: np.ndarray) -> np.ndarray:
    """Validate a spin array ``[n, L, L, 3]`` with even L >= 2; returns it as an ndarray.

    Raises:
        MagsrError: on a wrong shape or odd L.
    """
    spins = np.asarray(spins)
    if spins.ndim != 4 or spins.shape[-1] != 3 or spins.shape[1] != spins.shape[2]:
        raise MagsrError(f"spins must have shape [n, L, L, 3]. Received: shape={spins.shape}")
    if spins.shape[1] < 2 or spins.shape[1] % 2:
        raise MagsrError(f"The lattice size L must be even and >= 2. Received: L={spins.shape[1]}")
    return spins


def _dmi_vectors(ham: TypeI) -> dict[tuple[int, int], np.ndarray]:
    """D_ij for the neighbour at displacement (dx, dy) from site i, for the four neighbours."""
    out = {}
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        r_hat = np.array([dx, dy, 0.0])
        if ham.dmi == "interfacial":
            out[(dx, dy)] = ham.D * np.cross([0.0, 0.0, 1.0], r_hat)
        else:
            out[(dx, dy)] = ham.D * r_hat
    return out


def _neighbour(spins: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """S at r + (dx, dy) for every site r (periodic)."""
    return np.roll(spins, shift=(-dy, -dx), axis=(1, 2))


def dipolar_kernel_grid(h: int, w: int, boundary: str = "periodic") -> np.ndarray:
    """Dipolar coupling ``W_ab(r) = (delta_ab - 3 r_a r_b / r^2) / r^3`` on the FFT grid.

    Periodic: the ``[4, h, w]`` minimum-image kernel (tied images at L/2 averaged,
    which cancels W_xy there; :func:`dipolar_kernel` for h = w = L). Open: a ``[4, 2h, 2w]`` kernel
    of the plain displacements -(h-1)..(h-1) for a zero-padded linear convolution.

    Returns:
        float64 ``[4, ., .]`` with W_xx, W_yy, W_zz, W_xy indexed ``[., dy, dx]``.
    """

    def signed(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        d = np.arange(size)
        if boundary == "periodic":
            return np.where(2 * d > n, d - n, d).astype(np.float64), 2 * d == n
        # Zero-padded grid of size 2n: index n is no displacement that occurs.
        s = np.where(d >= n, d - size, d).astype(np.float64)
        return s, d == n

    ny, nx = (h, w) if boundary == "periodic" else (2 * h, 2 * w)
    sy, tied_y = signed(h, ny)
    sx, tied_x = signed(w, nx)
    y, x = np.meshgrid(sy, sx, indexing="ij")
    r2 = x * x + y * y
    r2[0, 0] = 1.0  # the self term is zeroed below
    inv_r3 = r2**-1.5
    kern = np.stack(
        [
            (1 - 3 * x * x / r2) * inv_r3,
            (1 - 3 * y * y / r2) * inv_r3,
            inv_r3,
            -3 * x * y / r2 * inv_r3,
        ]
    )
    kern[:, 0, 0] = 0.0
    if boundary == "periodic":
        kern[3][tied_y, :] = 0.0
        kern[3][:, tied_x] = 0.0
    else:
        kern[:, tied_y, :] = 0.0
        kern[:, :, tied_x] = 0.0
    return kern


@functools.lru_cache(maxsize=8)
def dipolar_kernel(lattice: int) -> np.ndarray:
    """Real-space dipolar coupling tensor W(r) on the periodic L x L lattice.

    ``W_ab(r) = (delta_ab - 3 r_a r_b / r^2) / r^3`` for the minimum-image displacement r (tied
    images averaged, see the module docstring), W(0) = 0. Only in-plane displacements occur, so
    W_xz = W_yz = 0.

    Returns:
        float64 array ``[4, L, L]`` holding W_xx, W_yy, W_zz, W_xy indexed ``[., dy, dx]``.
    """
    w = dipolar_kernel_grid(int(lattice), int(lattice), "periodic")
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=8)
def _dipolar_kernel_fft(lattice: int) -> np.ndarray:
    k = np.fft.rfft2(dipolar_kernel(lattice), axes=(-2, -1))
    k.setflags(write=False)
    return k


def dipolar_field(spins: np.ndarray, ham: TypeII) -> np.ndarray:
    """Dipolar part of h_eff: ``h_i = -D sum_j W(r_ij) S_j``, by FFT convolution.

    Args:
        spins: ``[n, L, L, 3]``.
        ham: the Type II Hamiltonian (uses ``ham.D``).

    Returns:
        float64 ``[n, L, L, 3]``.
    """
    spins = check_spins(spins)
    n = spins.shape[1]
    kxx, kyy, kzz, kxy = _dipolar_kernel_fft(n)
    s_hat = np.fft.rfft2(np.moveaxis(spins.astype(np.float64), -1, 1), axes=(-2, -1))
    h_hat = np.empty_like(s_hat)
    h_hat[:, 0] = kxx * s_hat[:, 0] + kxy * s_hat[:, 1]
    h_hat[:, 1] = kxy * s_hat[:, 0] + kyy * s_hat[:, 1]
    h_hat[:, 2] = kzz * s_hat[:, 2]
    h = np.fft.irfft2(h_hat, s=(n, n), axes=(-2, -1))
    return np.moveaxis(-ham.D * h, 1, -1)


def _exchange_dmi_field(spins: np.ndarray, ham: Hamiltonian) -> np.ndarray:
    """Field of the nearest-neighbour terms: sum over the 4 neighbours of J S_j + D_ij x S_j."""
    s = spins.astype(np.float64)
    h = np.zeros_like(s)
    dmi = _dmi_vectors(ham) if isinstance(ham, TypeI) else None
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        s_j = _neighbour(s, dx, dy)
        h += ham.J * s_j
        if dmi is not None:
            h += np.cross(dmi[(dx, dy)], s_j)
    return h


def local_field(spins: np.ndarray, ham: Hamiltonian) -> np.ndarray:
    """Effective field ``h_eff = -dH/dS_i`` for every site (anisotropy included as 2 K S_z z).

    Returns:
        float64 ``[n, L, L, 3]``.
    """
    spins = check_spins(spins)
    h = _exchange_dmi_field(spins, ham)
    if isinstance(ham, TypeII):
        h += dipolar_field(spins, ham)
        h[..., 2] += 2.0 * ham.K * spins[..., 2]
    return h


def energy(spins: np.ndarray, ham: Hamiltonian) -> np.ndarray:
    """Total energy of each configuration.

    The nearest-neighbour terms are summed bond by bond (each bond once); the dipolar term is
    ``-1/2 sum_i S_i . h_dip,i``.

    Returns:
        float64 ``[n]``.
    """
    spins = check_spins(spins)
    s = spins.astype(np.float64)
    e = np.zeros(s.shape[0])
    dmi = _dmi_vectors(ham) if isinstance(ham, TypeI) else None
    for dx, dy in ((1, 0), (0, 1)):
        s_j = _neighbour(s, dx, dy)
        bond = -ham.J * np.einsum("nyxc,nyxc->n", s, s_j)
        if dmi is not None:
            bond += np.einsum("c,nyxc->n", dmi[(dx, dy)], np.cross(s, s_j))
        e += bond
    if isinstance(ham, TypeII):
        e -= 0.5 * np.einsum("nyxc,nyxc->n", s, dipolar_field(s, ham))
        e -= ham.K * np.sum(s[..., 2] ** 2, axis=(1, 2))
    return e


def energy_per_spin(spins: np.ndarray, ham: Hamiltonian) -> np.ndarray:
    """`energy` divided by the number of sites L^2; float64 ``[n]``."""
    spins = check_spins(spins)
    return energy(spins, ham) / (spins.shape[1] * spins.shape[2])


def max_torque(spins: np.ndarray, ham: Hamiltonian) -> np.ndarray:
    """Largest ``|S_i x h_eff,i|`` over the lattice for each configuration; float64 ``[n]``.

    Zero exactly at a stationary point of H on the unit sphere; the stored (T = 0) states have it
    below 1e-2.
    """
    spins = check_spins(spins)
    torque = np.cross(spins.astype(np.float64), local_field(spins, ham))
    return np.sqrt(np.max(np.sum(torque**2, axis=-1), axis=(1, 2)))


def delta_energy(
    spins: np.ndarray, ham: Hamiltonian, site: tuple[int, int], new_spin: np.ndarray
) -> np.ndarray:
    """Energy change of turning one spin, from its local field (what the samplers use).

    ``dE = -(S' - S) . h_lin - K (S'_z^2 - S_z^2)``, where ``h_lin`` is the field of the bilinear
    terms (exchange, DMI, dipolar; no self term, so it does not depend on S itself).

    Args:
        spins: ``[n, L, L, 3]``.
        ham: TypeI or TypeII.
        site: ``(iy, ix)`` of the turned spin (the same site in every configuration).
        new_spin: ``[3]`` or ``[n, 3]`` new spin(s).

    Returns:
        float64 ``[n]``.
    """
    spins = check_spins(spins)
    iy, ix = site
    old = spins[:, iy, ix, :].astype(np.float64)
    new = np.broadcast_to(np.asarray(new_spin, dtype=np.float64), old.shape)
    h = local_field(spins, ham)[:, iy, ix, :]
    if isinstance(ham, TypeII):
        h[:, 2] -= 2.0 * ham.K * old[:, 2]
        aniso = -ham.K * (new[:, 2] ** 2 - old[:, 2] ** 2)
    else:
        aniso = 0.0
    return -np.sum((new - old) * h, axis=-1) + aniso
