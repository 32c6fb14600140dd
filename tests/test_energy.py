"""The differentiable energies against the NumPy physics (brute force where it is cheap)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from magsr_tf import MagsrError
from magsr_tf.data.pipeline import rotate_spins
from magsr_tf.nn.energy import SpinEnergy
from magsr_tf.physics import hamiltonian as phys
from magsr_tf.physics.hamiltonian_io import hamiltonian_to_json, resolve_hamiltonian

SEED = 20231
HAMILTONIANS = [
    phys.TypeI(),
    phys.TypeI(J=1.0, D=0.3, dmi="bulk"),
    phys.TypeII(),
    phys.TypeII(J=0.7, D=0.05, K=0.1),
]


def random_spins(n, h, w, seed=SEED):
    s = np.random.default_rng(seed).normal(size=(n, h, w, 3))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=lambda h: repr(h))
def test_energy_matches_numpy_physics(ham):
    s = random_spins(3, 12, 12)
    e_tf = SpinEnergy(ham, dtype="float64")(tf.constant(s)).numpy()
    np.testing.assert_allclose(e_tf, phys.energy_per_spin(s, ham), rtol=0, atol=1e-6)


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=lambda h: repr(h))
def test_gradient_is_minus_local_field(ham):
    s = tf.Variable(random_spins(2, 10, 10, seed=SEED + 1))
    energy = SpinEnergy(ham, dtype="float64")
    with tf.GradientTape() as tape:
        e = tf.reduce_sum(energy.total(s))
    grad = tape.gradient(e, s).numpy()
    np.testing.assert_allclose(grad, -phys.local_field(s.numpy(), ham), rtol=0, atol=1e-6)


def test_float32_close_to_float64():
    s = random_spins(2, 32, 32)
    for ham in (phys.TypeI(), phys.TypeII()):
        e32 = SpinEnergy(ham, dtype="float32")(tf.constant(s, tf.float32)).numpy()
        np.testing.assert_allclose(e32, phys.energy_per_spin(s, ham), atol=2e-6)


def _brute_force_open(s, ham):
    """Every bond and dipolar pair inside a small open image, summed explicitly."""
    n, h, w, _ = s.shape
    e = np.zeros(n)
    for iy in range(h):
        for ix in range(w):
            for dx, dy in ((1, 0), (0, 1)):
                jy, jx = iy + dy, ix + dx
                if jy >= h or jx >= w:
                    continue
                si, sj = s[:, iy, ix], s[:, jy, jx]
                e -= ham.J * np.sum(si * sj, axis=-1)
                if isinstance(ham, phys.TypeI):
                    r = np.array([dx, dy, 0.0])
                    d = np.cross([0, 0, 1.0], r) if ham.dmi == "interfacial" else r
                    e += ham.D * np.cross(si, sj) @ d
    if isinstance(ham, phys.TypeII):
        sites = [(y, x) for y in range(h) for x in range(w)]
        for a, (y1, x1) in enumerate(sites):
            for y2, x2 in sites[a + 1 :]:
                r = np.array([x2 - x1, y2 - y1, 0.0])
                dist = np.linalg.norm(r)
                rh = r / dist
                si, sj = s[:, y1, x1], s[:, y2, x2]
                e += ham.D * (np.sum(si * sj, -1) - 3 * (si @ rh) * (sj @ rh)) / dist**3
        e -= ham.K * np.sum(s[..., 2] ** 2, axis=(1, 2))
    return e / (h * w)


@pytest.mark.parametrize("ham", HAMILTONIANS, ids=lambda h: repr(h))
def test_open_boundary_brute_force(ham):
    s = random_spins(2, 5, 7, seed=SEED + 2)  # non-square on purpose
    e_tf = SpinEnergy(ham, boundary="open", dtype="float64")(tf.constant(s)).numpy()
    np.testing.assert_allclose(e_tf, _brute_force_open(s, ham), atol=1e-9)


def test_periodic_non_square_matches_tiled_square():
    # A 6x12 lattice tiled twice along y is a 12x12 lattice with twice the energy
    # for nearest-neighbour terms (per spin: the same).
    s = random_spins(1, 6, 12)
    tiled = np.concatenate([s, s], axis=1)
    for ham in (phys.TypeI(), phys.TypeI(dmi="bulk")):
        e_small = SpinEnergy(ham, dtype="float64")(tf.constant(s)).numpy()
        e_big = SpinEnergy(ham, dtype="float64")(tf.constant(tiled)).numpy()
        np.testing.assert_allclose(e_small, e_big, atol=1e-12)


@pytest.mark.parametrize("ham", [phys.TypeI(), phys.TypeI(dmi="bulk"), phys.TypeII()])
def test_quarter_turn_and_flip_are_symmetries(ham):
    # The training augmentation must map ground states to ground states: the
    # energy of a rotated (lattice and spins together) or flipped map is unchanged.
    s = random_spins(2, 16, 16, seed=SEED + 3)
    energy = SpinEnergy(ham, dtype="float64")
    e0 = energy(tf.constant(s)).numpy()
    for k in (1, 2, 3):
        np.testing.assert_allclose(energy(tf.constant(rotate_spins(s, k))).numpy(), e0, atol=1e-12)
    np.testing.assert_allclose(energy(tf.constant(-s)).numpy(), e0, atol=1e-12)


def test_spiral_energy_reference():
    # The ideal interfacial spiral along x with q = atan(D/J) on a lattice whose
    # size holds whole periods has E/spin = -J - sqrt(J^2 + D^2)... up to the
    # commensurability; at q from a 2 pi m / L grid it is -J - J cos q - D sin q.
    L, m = 64, 3
    q = 2 * np.pi * m / L
    x = np.arange(L)
    theta = q * x
    s = np.zeros((1, L, L, 3))
    s[0, :, :, 0] = np.sin(theta)[None, :]
    s[0, :, :, 2] = np.cos(theta)[None, :]
    ham = phys.TypeI()
    e = SpinEnergy(ham, dtype="float64")(tf.constant(s)).numpy()[0]
    # Interfacial DMI favours a cycloid in the x-z plane for a bond along x; the
    # sense of rotation picks the sign of the DMI term.
    assert e == pytest.approx(-1 - np.cos(q) - ham.D * abs(np.sin(q)), abs=1e-12) or e == (
        pytest.approx(-1 - np.cos(q) + ham.D * abs(np.sin(q)), abs=1e-12)
    )


def test_resolve_hamiltonian(tmp_path):
    assert resolve_hamiltonian("typeI") == phys.TypeI()
    assert resolve_hamiltonian({"kind": "typeII", "K": 0.1}) == phys.TypeII(K=0.1)
    p = tmp_path / "h.json"
    p.write_text(json.dumps({"kind": "typeI", "J": 1, "D": 0.25, "dmi": "bulk"}))
    assert resolve_hamiltonian(str(p)) == phys.TypeI(D=0.25, dmi="bulk")
    assert resolve_hamiltonian(hamiltonian_to_json(phys.TypeII())) == phys.TypeII()
    # the dataset attribute (hamiltonian_attrs) reads back too
    assert resolve_hamiltonian(json.dumps(phys.hamiltonian_attrs(phys.TypeII()))) == phys.TypeII()


@pytest.mark.parametrize(
    "spec, message",
    [
        ("typeIII", "Unknown Hamiltonian"),
        ({"J": 1.0}, "needs a 'kind'"),
        ({"kind": "typeI", "K": 1.0}, "unknown fields"),
        ({"kind": "typeI", "D": "x"}, "must be numbers"),
        ("/nonexistent/h.json", "no Hamiltonian file"),
    ],
)
def test_resolve_hamiltonian_errors(spec, message):
    with pytest.raises(MagsrError, match=message):
        resolve_hamiltonian(spec)


def test_bad_arguments():
    with pytest.raises(MagsrError, match="boundary"):
        SpinEnergy("typeI", boundary="reflect")
    with pytest.raises(MagsrError, match="shape"):
        SpinEnergy("typeI")(tf.zeros((2, 8, 8, 1)))
