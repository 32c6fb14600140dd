"""Tests of the annealer: equilibrium sampling, annealed physics, T = 0 finish, determinism."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from magsr_tf import MagsrError
from magsr_tf.physics import numba_dipolar as nd
from magsr_tf.physics import numba_kernels as nk
from magsr_tf.physics import numpy_backend as npb
from magsr_tf.physics.anneal import (
    DEFAULT_BATCH,
    Schedule,
    anneal,
    default_schedule,
    relax,
    schedule_attrs,
    thermal_energies,
)
from magsr_tf.physics.hamiltonian import (
    TypeI,
    TypeII,
    energy_per_spin,
    local_field,
    max_torque,
)
from magsr_tf.physics.observables import structure_factor_peak, wall_fraction

SEED = 4242
BACKENDS = ["numpy", "numba"]


def rngs_for(seed: int, count: int, offset: int = 0) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, offset + i]) for i in range(count)]


def assert_unit_length(spins: np.ndarray) -> None:
    assert spins.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(spins, axis=-1), 1.0, atol=1e-6)


# --------------------------------------------------------------------------- equilibrium


def linear_coupling(ham, lattice) -> np.ndarray:
    """M [N, 3, N, 3] with h_lin,i = -sum_j M_ij S_j, read off local_field on basis states."""
    n_sites = lattice * lattice
    basis = np.eye(3 * n_sites).reshape(3 * n_sites, lattice, lattice, 3)
    h = local_field(basis, ham)
    if isinstance(ham, TypeII):
        h[..., 2] -= 2 * ham.K * basis[..., 2]  # keep only the bilinear terms
    return -h.reshape(n_sites, 3, n_sites, 3).transpose(2, 3, 0, 1)


def metropolis_energies(ham, lattice, temperature, sweeps, burn_in, rng, cone=0.6) -> np.ndarray:
    """Plain sequential single-spin Metropolis; energy per spin after each sweep after burn-in.

    Proposals S' = normalize(S + cone * g), g isotropic Gaussian (symmetric: the proposal density
    depends on S . S' only); acceptance min(1, exp(-dE / T)).
    """
    n_sites = lattice * lattice
    coupling = linear_coupling(ham, lattice).reshape(n_sites, 3, 3 * n_sites)
    k_aniso = ham.K if isinstance(ham, TypeII) else 0.0
    s = rng.normal(size=(n_sites, 3))
    s /= np.linalg.norm(s, axis=-1, keepdims=True)
    e = energy_per_spin(s.reshape(1, lattice, lattice, 3), ham)[0] * n_sites
    out = []
    for sweep in range(sweeps):
        for i in range(n_sites):
            old = s[i].copy()
            new = old + cone * rng.normal(size=3)
            new /= np.linalg.norm(new)
            h_lin = -coupling[i] @ s.reshape(-1)
            d_e = -np.dot(new - old, h_lin) - k_aniso * (new[2] ** 2 - old[2] ** 2)
            if d_e <= 0 or rng.random() < math.exp(-d_e / temperature):
                s[i] = new
                e += d_e
        if sweep >= burn_in:
            out.append(e / n_sites)
    # The running energy must still agree with a fresh evaluation (checks dE as well).
    final = energy_per_spin(s.reshape(1, lattice, lattice, 3), ham)[0]
    assert final == pytest.approx(e / n_sites, abs=1e-9)
    return np.array(out)


METROPOLIS_RUN = (4, 6, 700, 100)  # lattice, chains, sweeps, burn-in sweeps


@functools.cache
def reference_chain_means(ham, temperature) -> np.ndarray:
    lattice, chains, sweeps, burn_in = METROPOLIS_RUN
    rng = np.random.default_rng(SEED)
    return np.array(
        [
            metropolis_energies(ham, lattice, temperature, sweeps, burn_in, rng).mean()
            for _ in range(chains)
        ]
    )


@pytest.mark.parametrize(
    "ham,temperature",
    [
        (TypeI(), 0.6),
        (TypeII(D=0.0, K=0.6), 0.5),  # anisotropy alone: checks the Metropolis correction
        (TypeII(), 0.5),
    ],
    ids=["typeI", "anisotropy", "typeII"],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sampler_matches_sequential_metropolis(ham, temperature, backend):
    lattice, chains, sweeps, burn_in = METROPOLIS_RUN
    reference = reference_chain_means(ham, temperature)
    ours = thermal_energies(
        ham, rngs_for(SEED, chains, 100), lattice, temperature, sweeps, backend=backend
    )[:, burn_in:].mean(axis=1)
    error = math.sqrt(reference.var(ddof=1) / chains + ours.var(ddof=1) / chains)
    assert error < 0.02 * abs(reference.mean())  # the comparison has resolving power
    assert abs(ours.mean() - reference.mean()) < 4 * error, (ours.mean(), reference.mean(), error)


@pytest.mark.parametrize("field_refresh", [0, 1, 4])
def test_type_ii_sampler_with_stale_far_field_matches_sequential_metropolis(field_refresh):
    """Numba backend: the far dipolar field frozen for 1 or 4 (the default) steps, or the whole
    field per half-sweep (the old scheme), samples the Type II equilibrium energy."""
    ham, temperature = TypeII(), 0.5
    lattice, chains, sweeps, burn_in = METROPOLIS_RUN
    reference = reference_chain_means(ham, temperature)
    ours = thermal_energies(
        ham,
        rngs_for(SEED, chains, 100),
        lattice,
        temperature,
        sweeps,
        backend="numba",
        field_refresh=field_refresh,
    )[:, burn_in:].mean(axis=1)
    error = math.sqrt(reference.var(ddof=1) / chains + ours.var(ddof=1) / chains)
    assert abs(ours.mean() - reference.mean()) < 4 * error, (ours.mean(), reference.mean(), error)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_stale_far_field_error_within_its_bound(temperature):
    """After one annealing step the frozen far field differs from a fresh one by at most
    D sum_r |W_far(r)| max |dS| per component (docs/annealer.md), and at low temperature by
    much less than the field itself."""
    from magsr_tf.physics import numba_backend as nb

    ham, lattice = TypeII(), 32
    rng = np.random.default_rng(SEED + 7)
    s = npb.random_state(rng, lattice)
    state = nk.seed_state(rng)
    schedule = Schedule(1.5, temperature, 100)
    nb.run_sweeps(s, ham, 1.0 / schedule.temperatures(), 1, state, 1)
    far = nb.DipolarFFT(ham, lattice, near=True)
    before, h_old = s.copy(), far(s)
    nb.run_sweeps(s, ham, [1.0 / temperature], 1, state, 1)
    error = np.abs(far(s) - h_old)
    w = np.abs(nb.far_kernel(lattice)).sum(axis=(1, 2))  # xx, yy, zz, xy
    step = np.abs(s - before).max()
    bound = ham.D * step * np.array([w[0] + w[3], w[3] + w[1], w[2]])
    assert (error.max(axis=(0, 1)) <= bound + 1e-5).all(), (error.max(axis=(0, 1)), bound)
    h = nd.nn_dipolar_field_array(s, ham.J, ham.D) + far(s)
    if temperature < 0.5:
        assert np.sqrt((error**2).mean()) < 0.01 * np.sqrt((h**2).sum(axis=-1).mean())


# --------------------------------------------------------------------------- annealed physics


@pytest.mark.parametrize("backend", BACKENDS)
def test_type_i_anneal_spiral_wave_number_and_t0(backend):
    ham = TypeI()
    spins = anneal(ham, rngs_for(SEED, 2), lattice=64, backend=backend)
    assert spins.shape == (2, 64, 64, 3)
    assert_unit_length(spins)
    assert np.all(max_torque(spins, ham) < 1e-2)
    q_expected = math.atan(ham.D / ham.J)
    np.testing.assert_allclose(structure_factor_peak(spins), q_expected, rtol=0.10)
    # Labyrinths lie close above the single-spiral energy -J - sqrt(J^2 + D^2).
    e = energy_per_spin(spins, ham)
    spiral = -ham.J - math.hypot(ham.J, ham.D)
    assert np.all(e > spiral) and np.all(e < spiral + 0.01)


def test_type_i_bulk_dmi_anneal():
    ham = TypeI(dmi="bulk")
    spins = anneal(ham, rngs_for(SEED, 1), lattice=64, backend="numba")
    assert max_torque(spins, ham)[0] < 1e-2
    np.testing.assert_allclose(structure_factor_peak(spins), math.atan(0.3), rtol=0.10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_type_ii_anneal_domains_and_walls(backend):
    ham = TypeII()
    schedule = Schedule(t_start=1.5, t_end=0.02, sweeps=60)
    spins = anneal(ham, rngs_for(SEED, 1), lattice=64, schedule=schedule, backend=backend)
    assert_unit_length(spins)
    assert np.all(max_torque(spins, ham) < 1e-2)
    sz = spins[..., 2]
    assert np.all(np.mean(np.abs(sz) > 0.9, axis=(1, 2)) >= 0.5)
    np.testing.assert_allclose(wall_fraction(spins), np.mean(np.abs(sz) < 0.9, axis=(1, 2)))


def test_type_ii_straight_wall_width_follows_effective_anisotropy():
    """A relaxed straight Bloch wall is as wide as the small effective anisotropy makes it.

    K_eff is the energy of the uniform in-plane state above the uniform +z one (K minus the
    dipolar shape anisotropy); the continuum wall S_z = tanh(x / delta), delta = sqrt(J / 2 K_eff),
    has |S_z| < 0.9 over 2 delta artanh(0.9) sites. The wall's own dipolar energy is not that of
    the uniform state, so only the scale is asserted (measured ratio about 0.7-0.8, see
    docs/annealer.md); a wrong anisotropy or dipolar factor moves it by sqrt(2) or more.
    """
    ham = TypeII()
    lattice = 64
    x = np.arange(lattice)
    up = (x >= lattice // 4) & (x < 3 * lattice // 4)
    theta = np.where(up, 0.0, np.pi) + 0.3 * np.sin(4 * np.pi * x / lattice)
    wall = np.zeros((1, lattice, lattice, 3))
    wall[0, :, :, 1] = np.sin(theta)
    wall[0, :, :, 2] = np.cos(theta)
    wall = relax(wall, ham, tol=1e-3)
    assert max_torque(wall, ham)[0] < 1e-3

    uniform = np.zeros((2, lattice, lattice, 3))
    uniform[0, ..., 2] = 1.0
    uniform[1, ..., 0] = 1.0
    e_out_of_plane, e_in_plane = energy_per_spin(uniform, ham)
    k_eff = e_in_plane - e_out_of_plane
    assert 0 < k_eff < 0.1 * ham.K  # the "small effective anisotropy" of the paper
    continuum_width = 2 * math.sqrt(ham.J / (2 * k_eff)) * math.atanh(0.9)

    sz = wall[0, ..., 2]
    width_per_wall = np.mean(np.sum(np.abs(sz) < 0.9, axis=1)) / 2
    assert 0.5 * continuum_width < width_per_wall < 1.0 * continuum_width
    assert np.all(np.abs(wall[0, ..., 0]) < 1e-2)  # Bloch: in-plane part along the wall (y)
    assert np.all(sz[:, lattice // 2] > 0.9) and np.all(sz[:, 0] < -0.9)


# --------------------------------------------------------------------------- interface


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_generator_same_configuration_whatever_the_batch(backend):
    ham = TypeII()
    schedule = Schedule(t_start=1.0, t_end=0.05, sweeps=8)
    together = anneal(ham, rngs_for(SEED, 3), lattice=8, schedule=schedule, backend=backend)
    alone = np.concatenate(
        [
            anneal(ham, rngs_for(SEED, 1, i), lattice=8, schedule=schedule, backend=backend)
            for i in range(3)
        ]
    )
    np.testing.assert_array_equal(together, alone)
    other = anneal(ham, rngs_for(SEED + 1, 1), lattice=8, schedule=schedule, backend=backend)
    assert not np.array_equal(other[0], together[0])


def test_workers_give_the_same_configurations():
    ham = TypeI()
    schedule = Schedule(t_start=1.0, t_end=0.05, sweeps=10)
    calls = []
    serial = anneal(ham, rngs_for(SEED, 3), lattice=8, schedule=schedule)
    pooled = anneal(
        ham,
        rngs_for(SEED, 3),
        lattice=8,
        schedule=schedule,
        workers=2,
        progress=lambda done, total: calls.append((done, total)),
    )
    np.testing.assert_array_equal(serial, pooled)
    assert calls[-1] == (3, 3) and all(t == 3 for _, t in calls)


REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_COMMIT = "0e58ee757e3b30a54346878f22c438d784d4ded6"
"""The code that made the shipped data and the README numbers (before the Type II speedup of
issue 25): Type I anneals of the current code must equal its bits."""
DIGEST_CASES = [(backend, dmi) for backend in ("numba", "numpy") for dmi in ("bulk", "interfacial")]
DIGEST_SCRIPT = """
import hashlib, sys
import numpy as np
import magsr_tf
from magsr_tf.physics.anneal import Schedule, anneal
from magsr_tf.physics.hamiltonian import TypeI
spins = anneal(TypeI(dmi=sys.argv[2]), [np.random.default_rng([2023, 0])], lattice=32,
               schedule=Schedule(1.5, 0.02, 100), backend=sys.argv[1])
print(magsr_tf.__file__)
print(hashlib.sha256(np.ascontiguousarray(spins, dtype=np.float32).tobytes()).hexdigest())
"""


def _anneal_digest(package_root, backend, dmi):
    """(imported file, sha256) of one Type I anneal of the package found in ``package_root``."""
    import subprocess
    import sys

    # The generic CPU target keeps numba's own code free of the host's FMA and vector width;
    # NumPy and libm still dispatch on the CPU, hence a reference run on the same machine.
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "PYTHONPATH": str(package_root)}
    proc = subprocess.run(
        [sys.executable, "-c", DIGEST_SCRIPT, backend, dmi],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_root,
        timeout=600,
        check=True,
    )
    imported, digest = proc.stdout.split()
    return imported, digest


@pytest.fixture(scope="module")
def reference_package(tmp_path_factory):
    """The package source of REFERENCE_COMMIT, extracted from this clone's git history."""
    import io
    import subprocess
    import tarfile

    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", REFERENCE_COMMIT, "magsr_tf"],
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"git history with commit {REFERENCE_COMMIT[:7]} is not available")
    root = tmp_path_factory.mktemp("reference")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.mark.parametrize("backend, dmi", DIGEST_CASES)
def test_type_i_bits_are_pinned(backend, dmi, reference_package):
    """Type I anneals stay bit-identical to the data already made (quick dataset, README numbers).

    A change to the Type I kernels' source, even a branch that Type I never takes (the numba
    kernels are inlined and compiled with fastmath), can change the machine code and hence the
    chaotic anneal's bits: such a change must fail here, not silently. Fixed digests proved to
    depend on the CPU (NumPy's SIMD dispatch and libm differ between machines of the same kind),
    so the reference is the code of REFERENCE_COMMIT run in the same session, on the same
    machine and toolchain, in a subprocess each.
    """
    ref_file, ref_digest = _anneal_digest(reference_package, backend, dmi)
    cur_file, cur_digest = _anneal_digest(REPO_ROOT, backend, dmi)
    assert Path(ref_file).is_relative_to(reference_package)
    assert Path(cur_file).is_relative_to(REPO_ROOT)
    assert cur_digest == ref_digest


def test_relax_reaches_torque_bound():
    rng = np.random.default_rng(SEED)
    spins = rng.normal(size=(2, 16, 16, 3))
    spins /= np.linalg.norm(spins, axis=-1, keepdims=True)
    for backend in BACKENDS:
        for ham in (TypeI(), TypeII()):
            out = relax(spins, ham, tol=1e-3, backend=backend)
            assert_unit_length(out)
            assert np.all(max_torque(out, ham) < 1e-3)
            assert np.all(energy_per_spin(out, ham) < energy_per_spin(spins, ham))
            # A state that already meets the bound comes back unchanged (up to renormalization).
            again = relax(out, ham, tol=1e-3, backend=backend)
            np.testing.assert_allclose(again, out, atol=1e-6)


def test_schedule_and_attrs():
    for ham in (TypeI(), TypeII()):
        schedule = default_schedule(ham)
        temps = schedule.temperatures()
        assert temps.shape == (schedule.sweeps,)
        assert temps[0] == pytest.approx(schedule.t_start)
        assert temps[-1] == pytest.approx(schedule.t_end)
        assert np.all(np.diff(temps) < 0)
        attrs = json.loads(json.dumps(schedule_attrs(schedule, ham)))
        assert attrs["sweeps"] == schedule.sweeps and attrs["relax_tol"] == 1e-2
        assert schedule.longer(4).sweeps == 4 * schedule.sweeps
        if isinstance(ham, TypeII):
            assert attrs["field_refresh"] == schedule.field_refresh  # recorded with the data
        else:  # Type I: the attributes of before issue 25 (same bits, files can be resumed)
            assert "field_refresh" not in attrs and "field per half-sweep" in attrs["update"]
    assert DEFAULT_BATCH >= 1
    for bad in (-1, 1.5):
        with pytest.raises(MagsrError, match="field_refresh"):
            Schedule(1.0, 0.1, 10, field_refresh=bad)


def test_bad_input_raises_magsr_error():
    rngs = rngs_for(SEED, 1)
    with pytest.raises(MagsrError, match="lattice"):
        anneal(TypeI(), rngs, lattice=7)
    with pytest.raises(MagsrError, match="backend"):
        anneal(TypeI(), rngs, lattice=8, backend="cuda")
    with pytest.raises(MagsrError, match="workers"):
        anneal(TypeI(), rngs, lattice=8, workers=0)
    with pytest.raises(MagsrError, match="Generator"):
        anneal(TypeI(), [123], lattice=8)
    with pytest.raises(MagsrError, match="ham"):
        anneal("typeI", rngs, lattice=8)
    with pytest.raises(MagsrError, match="t_end"):
        Schedule(t_start=0.1, t_end=1.0, sweeps=10)
    with pytest.raises(MagsrError, match="sweeps"):
        Schedule(t_start=1.0, t_end=0.1, sweeps=0)
    assert anneal(TypeI(), [], lattice=8).shape == (0, 8, 8, 3)


# --------------------------------------------------------------------------- slow


def _convergence(ham, count=16, lattice=128):
    schedule = default_schedule(ham)
    short = anneal(ham, rngs_for(SEED, count), lattice, schedule, workers=2)
    long = anneal(ham, rngs_for(SEED, count, 1000), lattice, schedule.longer(4), workers=2)
    return short, long


@pytest.mark.slow
def test_type_i_default_schedule_converged():
    ham = TypeI()
    short, long = _convergence(ham)
    e_short = energy_per_spin(short, ham).mean()
    e_long = energy_per_spin(long, ham).mean()
    print(f"Type I E/spin: default {e_short:.5f}, 4x longer {e_long:.5f}")
    q_peaks = structure_factor_peak(short).mean(), structure_factor_peak(long).mean()
    print(f"Type I q peak: default {q_peaks[0]:.4f}, 4x longer {q_peaks[1]:.4f} rad/site")
    assert abs(e_short - e_long) < 0.01 * abs(e_long)
    assert np.all(max_torque(short, ham) < 1e-2)
    np.testing.assert_allclose(structure_factor_peak(short), math.atan(0.3), rtol=0.10)


@pytest.mark.slow
def test_type_ii_default_schedule_converged():
    ham = TypeII()
    short, long = _convergence(ham)
    e_short = energy_per_spin(short, ham).mean()
    e_long = energy_per_spin(long, ham).mean()
    print(f"Type II E/spin: default {e_short:.5f}, 4x longer {e_long:.5f}")
    walls = wall_fraction(short).mean(), wall_fraction(long).mean()
    qz = structure_factor_peak(short, 2).mean(), structure_factor_peak(long, 2).mean()
    print(f"wall fraction: default {walls[0]:.4f}, 4x longer {walls[1]:.4f}")
    print(f"S_z structure-factor peak: default {qz[0]:.4f}, 4x longer {qz[1]:.4f} rad/site")
    assert abs(e_short - e_long) < 0.01 * abs(e_long)
    assert np.all(max_torque(short, ham) < 1e-2)
    # Structure, not only energy: domain size and wall fraction as after the longer anneal.
    assert abs(walls[0] - walls[1]) < 0.05
    assert abs(qz[0] - qz[1]) < 0.2 * qz[1]


# --------------------------------------------------------------------------- heat-bath draw


@njit(cache=True)
def _numba_draws(h, beta, state, samples):
    """`samples` draws of the numba kernel's heat-bath step about the fixed field h."""
    out = np.empty((samples, 3))
    for i in range(samples):
        out[i, 0], out[i, 1], out[i, 2] = nk._heat_bath_draw(h[0], h[1], h[2], beta, state)
    return out


@pytest.mark.parametrize("direction", [(0.3, -0.5, 0.8), (0.0, 0.1, -1.0), (1.0, 0.0, 0.0)])
@pytest.mark.parametrize("beta_h", [0.05, 1.5, 40.0])
def test_heat_bath_draw_samples_exp_beta_h_dot_s(direction, beta_h):
    """Both backends' draws have the Langevin mean coth(a) - 1/a along h and no transverse bias."""
    samples = 20_000
    h_hat = np.array(direction) / np.linalg.norm(direction)
    h = 2.0 * h_hat
    beta = beta_h / 2.0
    rng = np.random.default_rng(SEED)
    field = np.broadcast_to(h[:, None], (3, samples)).copy()
    draws = {"numpy": npb.heat_bath_draw(field, beta, rng.random(samples), rng.random(samples)).T}
    draws["numba"] = _numba_draws(h, beta, nk.seed_state(rng), samples)
    langevin = 1.0 / np.tanh(beta_h) - 1.0 / beta_h
    for name, s in draws.items():
        np.testing.assert_allclose(np.linalg.norm(s, axis=1), 1.0, atol=1e-12, err_msg=name)
        cos = s @ h_hat
        assert abs(cos.mean() - langevin) < 5 * cos.std() / np.sqrt(samples) + 1e-12, name
        # <cos^2> = 1 - 2 L(a) / a for the same law
        second = 1.0 - 2.0 * langevin / beta_h
        assert abs((cos**2).mean() - second) < 5 * (cos**2).std() / np.sqrt(samples) + 1e-12, name
        transverse = s - np.outer(cos, h_hat)
        assert np.all(np.abs(transverse.mean(axis=0)) < 5 / np.sqrt(samples)), name
