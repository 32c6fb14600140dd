"""Training input: augmentations are exact symmetries; the block reader covers every row."""

import h5py
import numpy as np
import pytest

from magsr_tf.data.pipeline import ArraySource, H5Source, augment, batches, rotate_spins
from magsr_tf.ops.downsample import downsample
from magsr_tf.physics.hamiltonian import TypeI, TypeII, energy

SEED = 17


@pytest.fixture(scope="module")
def state():
    """A smooth random unit-vector texture on a 32x32 torus."""
    rng = np.random.default_rng(SEED)
    noise = rng.normal(size=(2, 32, 32, 3))
    k = np.fft.fftfreq(32)
    mask = (np.hypot(*np.meshgrid(k, k, indexing="ij")) < 0.15)[None, :, :, None]
    s = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(1, 2)) * mask, axes=(1, 2)))
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


@pytest.mark.parametrize("ham", [TypeI(), TypeI(dmi="bulk"), TypeII()], ids=str)
@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotation_and_flip_leave_every_hamiltonian_invariant(state, ham, turns):
    e0 = energy(state, ham)
    np.testing.assert_allclose(energy(rotate_spins(state, turns), ham), e0, rtol=1e-9)
    np.testing.assert_allclose(energy(-state, ham), e0, rtol=1e-9)


def test_rotating_the_spins_the_wrong_way_is_caught(state):
    """Guards the component convention: turning the lattice but not the spins changes E_DMI."""
    turned = np.ascontiguousarray(np.rot90(state, 1, axes=(1, 2)))
    assert np.abs(energy(turned, TypeI()) - energy(state, TypeI())).max() > 1.0


@pytest.mark.parametrize("ratio", [4, 8])
def test_lr_rotation_is_the_lr_image_of_a_rotated_translated_state(state, ratio):
    """rot90 on the LR grid = downsizing of the HR state rotated about another lattice site."""
    lhs = rotate_spins(downsample(state, ratio), 1)
    rhs = downsample(rotate_spins(np.roll(state, ratio - 1, axis=2), 1), ratio)
    np.testing.assert_allclose(lhs, rhs, atol=1e-6)


def test_augment_keeps_norms_and_shapes(state):
    lr = downsample(state, 4)
    out = augment(lr, np.random.default_rng(SEED))
    assert out.shape == lr.shape
    np.testing.assert_allclose(
        np.sort(np.linalg.norm(out, axis=-1).ravel()),
        np.sort(np.linalg.norm(lr, axis=-1).ravel()),
        rtol=1e-6,
    )


def test_h5_blocks_visit_every_training_row_once(tmp_path):
    path = tmp_path / "d.h5"
    n, stop = 40, 30
    lr = np.arange(n, dtype="float32")[:, None, None, None] * np.ones((1, 2, 2, 3), "float32")
    with h5py.File(path, "w") as f:
        f["lr/x4"] = lr
    source = H5Source(str(path), 4, stop, use_phases=False)
    rows = np.concatenate([b[:, 0, 0, 0] for b in source.blocks(np.random.default_rng(0), 8)])
    assert sorted(rows.astype(int)) == list(range(stop))
    shards = [
        np.concatenate([b[:, 0, 0, 0] for b in source.blocks(np.random.default_rng(0), 8, i, 2)])
        for i in range(2)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(np.concatenate(shards).astype(int)) == list(range(stop))


def test_batches_are_deterministic_per_epoch(state):
    source = ArraySource(downsample(state, 4).repeat(8, axis=0))
    a = batches(source, 4, seed=SEED, first_epoch=3)
    b = batches(source, 4, seed=SEED, first_epoch=3)
    for _ in range(5):
        np.testing.assert_array_equal(next(a), next(b))


def test_training_pipelines_run_without_tf_data_autotuning():
    # With autotuning on, freeing an iterator waited up to 60 s for tf.data's
    # autotuning thread (TF 2.21): the training and benchmark pipelines turn it off.
    import tensorflow as tf

    from magsr_tf.training.distribute import without_autotune

    ds = without_autotune(tf.data.Dataset.range(3).prefetch(2))
    assert ds.options().autotune.enabled is False
    assert list(ds.as_numpy_iterator()) == [0, 1, 2]
