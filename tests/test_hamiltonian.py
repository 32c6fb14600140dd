"""Physics tests of the Type I / Type II Hamiltonians against independent brute-force sums."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from magsr_tf import MagsrError
from magsr_tf.physics import numba_kernels as nk
from magsr_tf.physics import numpy_backend as npb
from magsr_tf.physics.hamiltonian import (
    TypeI,
    TypeII,
    delta_energy,
    dipolar_kernel,
    energy,
    energy_per_spin,
    hamiltonian_attrs,
    local_field,
    make_hamiltonian,
    max_torque,
)
from magsr_tf.physics.hamiltonian_io import (
    dataset_hamiltonian,
    hamiltonian_from_attrs,
    hamiltonian_to_json,
    resolve_hamiltonian,
)

SEED = 20231
HAMILTONIANS = [
    TypeI(),
    TypeI(dmi="bulk"),
    TypeII(),
    TypeII(J=0.7, D=0.2, K=0.4),  # strong dipolar coupling: the dipolar terms dominate errors
]


def random_spins(rng: np.random.Generator, n: int, lattice: int) -> np.ndarray:
    s = rng.normal(size=(n, lattice, lattice, 3))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


def cross_matrix(v) -> np.ndarray:
    """[v]_x with [v]_x a = v x a."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], dtype=float)


def min_image_candidates(d: int, n: int) -> list[int]:
    d %= n
    if 2 * d == n:
        return [d, d - n]
    return [d - n] if 2 * d > n else [d]


def coupling_matrix(ham, lattice: int) -> np.ndarray:
    """Dense M [3N, 3N] with E = 1/2 S^T M S (- K sum S_z^2), pair by pair, loops only.

    Written independently of the library: bonds from the Hamiltonian's definition and dipolar
    pairs from the minimum-image displacement with tied images averaged.
    """
    n_sites = lattice * lattice
    m = np.zeros((3 * n_sites, 3 * n_sites))

    def index(ix, iy):
        return (iy % lattice) * lattice + (ix % lattice)

    def add_pair(i, j, block):  # E += S_i^T block S_j
        m[3 * i : 3 * i + 3, 3 * j : 3 * j + 3] += block
        m[3 * j : 3 * j + 3, 3 * i : 3 * i + 3] += block.T

    for iy in range(lattice):
        for ix in range(lattice):
            i = index(ix, iy)
            for dx, dy in ((1, 0), (0, 1)):
                j = index(ix + dx, iy + dy)
                block = -ham.J * np.eye(3)
                if isinstance(ham, TypeI):
                    r_hat = np.array([dx, dy, 0.0])
                    if ham.dmi == "interfacial":
                        d_vec = ham.D * np.cross([0.0, 0.0, 1.0], r_hat)
                    else:
                        d_vec = ham.D * r_hat
                    # D . (S_i x S_j) = S_i . (S_j x D) = -S_i^T [D]_x S_j
                    block = block - cross_matrix(d_vec)
                add_pair(i, j, block)
    if isinstance(ham, TypeII):
        for i in range(n_sites):
            for j in range(i + 1, n_sites):
                xi, yi = i % lattice, i // lattice
                xj, yj = j % lattice, j // lattice
                xs = min_image_candidates(xj - xi, lattice)
                ys = min_image_candidates(yj - yi, lattice)
                block = np.zeros((3, 3))
                for x in xs:
                    for y in ys:
                        r = math.hypot(x, y)
                        e = np.array([x / r, y / r, 0.0])
                        block += (np.eye(3) - 3 * np.outer(e, e)) / r**3
                add_pair(i, j, ham.D * block / (len(xs) * len(ys)))
    return m


def brute_energy(spins: np.ndarray, ham, m: np.ndarray) -> np.ndarray:
    flat = spins.reshape(spins.shape[0], -1).astype(np.float64)
    e = 0.5 * np.einsum("na,ab,nb->n", flat, m, flat)
    if isinstance(ham, TypeII):
        e -= ham.K * np.sum(spins[..., 2].astype(np.float64) ** 2, axis=(1, 2))
    return e


def test_make_hamiltonian_names_and_errors():
    assert make_hamiltonian("typeI") == TypeI()
    assert make_hamiltonian("TypeII") == TypeII()
    with pytest.raises(MagsrError, match="typeIII"):
        make_hamiltonian("typeIII")
    with pytest.raises(MagsrError, match="dmi"):
        TypeI(dmi="helical")
    with pytest.raises(MagsrError, match="shape"):
        energy(np.zeros((4, 4, 3)), TypeI())
    with pytest.raises(MagsrError, match="even"):
        energy(np.zeros((1, 5, 5, 3)), TypeI())


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=str)
@pytest.mark.parametrize("lattice", [4, 6])
def test_energy_equals_brute_force_pair_sum(ham, lattice):
    rng = np.random.default_rng(SEED + lattice)
    spins = random_spins(rng, 3, lattice)
    expected = brute_energy(spins, ham, coupling_matrix(ham, lattice))
    np.testing.assert_allclose(energy(spins, ham), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        energy_per_spin(spins, ham), expected / lattice**2, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=str)
def test_local_field_is_minus_energy_gradient(ham):
    lattice = 6
    rng = np.random.default_rng(SEED)
    spins = random_spins(rng, 1, lattice)
    m = coupling_matrix(ham, lattice)
    # Analytic gradient of the brute-force energy, independent of local_field.
    flat = spins.reshape(-1)
    grad = (m @ flat).reshape(spins.shape)
    if isinstance(ham, TypeII):
        grad[..., 2] -= 2 * ham.K * spins[..., 2]
    np.testing.assert_allclose(local_field(spins, ham), -grad, atol=1e-10)
    # And a finite-difference spot check on the library's own energy.
    eps = 1e-6
    for iy, ix, c in ((0, 0, 0), (2, 5, 1), (5, 3, 2)):
        plus, minus = spins.copy(), spins.copy()
        plus[0, iy, ix, c] += eps
        minus[0, iy, ix, c] -= eps
        numeric = (energy(plus, ham) - energy(minus, ham))[0] / (2 * eps)
        assert local_field(spins, ham)[0, iy, ix, c] == pytest.approx(-numeric, abs=1e-6)


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=str)
def test_single_spin_energy_change_equals_total_energy_difference(ham):
    lattice = 8
    rng = np.random.default_rng(SEED + 1)
    spins = random_spins(rng, 4, lattice)
    for site in ((0, 0), (3, 7), (7, 4)):
        new = rng.normal(size=(4, 3))
        new /= np.linalg.norm(new, axis=-1, keepdims=True)
        moved = spins.copy()
        moved[:, site[0], site[1], :] = new
        np.testing.assert_allclose(
            delta_energy(spins, ham, site, new),
            energy(moved, ham) - energy(spins, ham),
            atol=1e-10,
        )


@pytest.mark.parametrize("ham", [TypeI(), TypeI(dmi="bulk"), TypeII()], ids=str)
def test_sampler_fields_match_local_field(ham):
    """The numba kernels and the numpy quarter-layout fields use the same physics."""
    lattice = 8
    rng = np.random.default_rng(SEED + 2)
    spins = random_spins(rng, 2, lattice)
    expected = local_field(spins, ham)
    if isinstance(ham, TypeII):
        from magsr_tf.physics.hamiltonian import dipolar_field

        expected = expected - dipolar_field(spins, ham)
        expected[..., 2] -= 2 * ham.K * spins[..., 2]
        d, dmi = 0.0, 0
    else:
        d, dmi = ham.D, 1 if ham.dmi == "interfacial" else 2
    for k in range(2):
        np.testing.assert_allclose(nk.nn_field_array(spins[k], ham.J, d, dmi), expected[k])
    q = npb.to_quarters(spins)
    fields = np.zeros_like(q)
    for k in range(4):
        fields[k] = npb.nn_field(q, k, ham)
    np.testing.assert_allclose(npb.from_quarters(fields), expected, atol=1e-12)
    np.testing.assert_array_equal(npb.from_quarters(q), spins)


@pytest.mark.parametrize("lattice", [4, 8, 16])
@pytest.mark.parametrize("ham", [TypeII(), TypeII(J=0.7, D=0.2, K=0.4)], ids=str)
def test_live_nearest_dipoles_plus_far_field_is_the_whole_field(ham, lattice):
    """Numba backend, Type II: the kernels' live nearest-neighbour dipoles (`numba_dipolar`) plus
    the far-field FFT give exchange + the whole dipolar field, in every lattice size."""
    from magsr_tf.physics import numba_backend as nb
    from magsr_tf.physics import numba_dipolar as nd

    rng = np.random.default_rng(SEED + 3)
    spins = random_spins(rng, 2, lattice)
    expected = local_field(spins, ham)
    expected[..., 2] -= 2 * ham.K * spins[..., 2]
    far = nb.DipolarFFT(ham, lattice, near=True)
    whole = nb.DipolarFFT(ham, lattice, near=False)
    for k in range(2):
        s = spins[k].astype(np.float64)
        got = nd.nn_dipolar_field_array(s, ham.J, ham.D) + far(s)
        np.testing.assert_allclose(got, expected[k], atol=1e-5)  # float32 FFT
        # The split is not trivial: the far field alone misses the nearest dipoles.
        near_part = whole(s) - far(s)
        assert np.abs(near_part).max() > 0.5 * ham.D


def test_dipolar_kernel_symmetry_and_shape_anisotropy():
    w = dipolar_kernel(16)
    assert w[:, 0, 0].tolist() == [0, 0, 0, 0]
    # Periodic and even: W(-r) = W(r); mirror x -> -x flips W_xy only.
    np.testing.assert_allclose(w, np.roll(w[:, ::-1, ::-1], 1, axis=(1, 2)), atol=1e-15)
    mirrored = np.roll(w[:, :, ::-1], 1, axis=2)
    np.testing.assert_allclose(mirrored[:3], w[:3], atol=1e-15)
    np.testing.assert_allclose(mirrored[3], -w[3], atol=1e-15)
    # A uniform out-of-plane state costs D/2 sum 1/r^3 more than in-plane along x: 3/4 D sum 1/r^3.
    ham = TypeII()
    up = np.zeros((1, 16, 16, 3))
    up[..., 2] = 1
    along_x = np.zeros((1, 16, 16, 3))
    along_x[..., 0] = 1
    shape_anisotropy = 0.75 * ham.D * w[2].sum()
    difference = energy_per_spin(up, ham) - energy_per_spin(along_x, ham)
    assert difference[0] == pytest.approx(shape_anisotropy - ham.K, rel=1e-10)


def test_spiral_energy_and_zero_torque():
    """The commensurate Neel spiral is stationary; the right handedness has -J(1+cos q)-D sin q."""
    ham = TypeI()
    lattice = 64
    q = 2 * np.pi * 3 / lattice
    x = np.arange(lattice)
    energies = {}
    for sign in (1, -1):
        s = np.zeros((1, lattice, lattice, 3))
        s[0, :, :, 0] = np.sin(sign * q * x)[None, :]
        s[0, :, :, 2] = np.cos(q * x)[None, :]
        energies[sign] = energy_per_spin(s, ham)[0]
        assert max_torque(s, ham)[0] < 1e-12
    expected = -ham.J * (1 + np.cos(q)) - ham.D * np.sin(q)
    assert min(energies.values()) == pytest.approx(expected, rel=1e-12)
    assert max(energies.values()) == pytest.approx(expected + 2 * ham.D * np.sin(q), rel=1e-12)


def test_max_torque_positive_off_equilibrium():
    rng = np.random.default_rng(SEED + 3)
    spins = random_spins(rng, 2, 8)
    torque = max_torque(spins, TypeII())
    field = local_field(spins, TypeII())
    expected = np.linalg.norm(np.cross(spins, field), axis=-1).max(axis=(1, 2))
    np.testing.assert_allclose(torque, expected)
    assert np.all(torque > 0.1)


@pytest.mark.parametrize("ham", [TypeI(), TypeII()], ids=str)
def test_hamiltonian_attrs_json(ham):
    attrs = hamiltonian_attrs(ham)
    assert json.loads(json.dumps(attrs))["kind"] == ham.kind
    assert attrs["J"] == ham.J


@pytest.mark.parametrize("ham", [TypeI(), TypeII()], ids=str)
def test_numba_torque_matches_max_torque(ham):
    """max_torque and align_half_sweep share one field/torque kernel; both equal the physics."""
    from magsr_tf.physics.hamiltonian import dipolar_field

    rng = np.random.default_rng(SEED + 4)
    spins = random_spins(rng, 1, 8)
    if isinstance(ham, TypeII):
        h_ext, use, d, dmi, k = dipolar_field(spins, ham)[0], True, 0.0, 0, ham.K
    else:
        h_ext, use, d, dmi, k = np.zeros((1, 1, 3)), False, ham.D, 1, 0.0
    expected = max_torque(spins, ham)[0]
    s = spins[0].copy()
    assert nk.max_torque(s, ham.J, d, dmi, k, h_ext, use) == pytest.approx(expected, rel=1e-12)
    # omega = 0 leaves the spins in place, so the two half-sweeps see the torque of `spins`.
    worst = max(nk.align_half_sweep(s, p, ham.J, d, dmi, k, h_ext, use, 0.0) for p in (0, 1))
    assert worst == pytest.approx(expected, rel=1e-12)


HAMILTONIAN_ROUND_TRIP = [TypeI(), TypeI(J=0.8, D=0.25, dmi="bulk"), TypeII(), TypeII(D=0.1, K=0.3)]


@pytest.mark.parametrize("ham", HAMILTONIAN_ROUND_TRIP, ids=str)
def test_hamiltonian_json_round_trip(ham):
    description = hamiltonian_to_json(ham)
    assert description["kind"] == ham.kind
    assert resolve_hamiltonian(description) == ham
    assert resolve_hamiltonian(json.dumps(description)) == ham
    assert resolve_hamiltonian(json.dumps(description).encode()) == ham


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "typeI", "K": 0.1},
        {"kind": "typeII", "dmi": "bulk"},
        {"kind": "typeII", "J": 1.0, "note": "x"},
        '{"kind": "typeI", "Dz": 0.3}',
    ],
)
def test_resolve_hamiltonian_refuses_unknown_fields(spec):
    with pytest.raises(MagsrError, match="unknown fields"):
        resolve_hamiltonian(spec)
    if isinstance(spec, dict):
        with pytest.raises(MagsrError, match="unknown fields"):
            hamiltonian_from_attrs(spec, "typeI")


@pytest.mark.parametrize("ham", [TypeI(D=0.2, dmi="bulk"), TypeII(K=0.2)], ids=str)
def test_dataset_attribute_reads_back(tmp_path, ham):
    """The attribute the dataset writer stores (with dipolar_convention for Type II)."""
    import h5py

    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.attrs["hamiltonian"] = json.dumps(hamiltonian_attrs(ham), sort_keys=True)
    assert dataset_hamiltonian(path) == ham
    with h5py.File(path, "r") as f:
        raw = f.attrs["hamiltonian"]
    assert hamiltonian_from_attrs(json.loads(raw), "typeI") == ham
    assert hamiltonian_from_attrs(raw, "typeI") == ham


def test_dataset_without_attribute(tmp_path):
    import h5py

    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.attrs["kind"] = "typeII"
    assert dataset_hamiltonian(path) is None
    assert hamiltonian_from_attrs(None, "typeII") == TypeII()
    assert hamiltonian_from_attrs({}, "typeI") == TypeI()
    # Without a kind of its own the attribute describes the dataset's kind.
    assert hamiltonian_from_attrs({"K": 0.2}, "typeII") == TypeII(K=0.2)
    with pytest.raises(MagsrError, match="cannot read"):
        dataset_hamiltonian(tmp_path / "missing.h5")
