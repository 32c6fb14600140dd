"""Monte Carlo simulation of the spin lattices: Hamiltonians, annealing, observables.

Pure NumPy/Numba, no TensorFlow (docs/annealer.md).
"""

from magsr_tf.lazy import lazy_exports

_EXPORTS = {
    "BACKENDS": "magsr_tf.physics.anneal",
    "DEFAULT_BATCH": "magsr_tf.physics.anneal",
    "POLL_SECONDS": "magsr_tf.physics.workers",
    "Schedule": "magsr_tf.physics.anneal",
    "TypeI": "magsr_tf.physics.hamiltonian",
    "TypeII": "magsr_tf.physics.hamiltonian",
    "check_spins": "magsr_tf.physics.hamiltonian",
    "dataset_hamiltonian": "magsr_tf.physics.hamiltonian_io",
    "default_schedule": "magsr_tf.physics.anneal",
    "delta_energy": "magsr_tf.physics.hamiltonian",
    "dipolar_field": "magsr_tf.physics.hamiltonian",
    "dipolar_kernel": "magsr_tf.physics.hamiltonian",
    "dipolar_kernel_grid": "magsr_tf.physics.hamiltonian",
    "domain_wall_length": "magsr_tf.physics.observables",
    "energy": "magsr_tf.physics.hamiltonian",
    "energy_per_spin": "magsr_tf.physics.hamiltonian",
    "exit_with_parent": "magsr_tf.physics.workers",
    "hamiltonian_attrs": "magsr_tf.physics.hamiltonian",
    "hamiltonian_from_attrs": "magsr_tf.physics.hamiltonian_io",
    "hamiltonian_to_json": "magsr_tf.physics.hamiltonian_io",
    "local_field": "magsr_tf.physics.hamiltonian",
    "make_hamiltonian": "magsr_tf.physics.hamiltonian",
    "max_torque": "magsr_tf.physics.hamiltonian",
    "physical_summary": "magsr_tf.physics.observables",
    "relax": "magsr_tf.physics.anneal",
    "resolve_backend": "magsr_tf.physics.anneal",
    "resolve_hamiltonian": "magsr_tf.physics.hamiltonian_io",
    "schedule_attrs": "magsr_tf.physics.anneal",
    "spawn_pool": "magsr_tf.physics.workers",
    "structure_factor": "magsr_tf.physics.observables",
    "structure_factor_2d": "magsr_tf.physics.observables",
    "structure_factor_peak": "magsr_tf.physics.observables",
    "thermal_energies": "magsr_tf.physics.anneal",
    "topological_charge": "magsr_tf.physics.observables",
    "wall_fraction": "magsr_tf.physics.observables",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
