"""HDF5 dataset writer and validators, with the real annealer on tiny lattices."""

from __future__ import annotations

import json
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import file_digest

import magsr_tf
from magsr_tf import MagsrError
from magsr_tf.data import annealing, resume
from magsr_tf.data import format as dataset_format
from magsr_tf.data.format import (
    DatasetInfo,
    check_finite,
    check_ratio,
    open_info,
    partial_path,
)
from magsr_tf.data.generation import GenerateConfig, generate
from magsr_tf.data.lr_images import phase_offsets
from magsr_tf.ops.downsample import downsample
from magsr_tf.physics.anneal import Schedule, schedule_attrs
from magsr_tf.physics.hamiltonian import hamiltonian_attrs, make_hamiltonian, max_torque

SEED = 4242
LATTICE = 16
N = 12
N_TEST = 3
PHASES = 3
# Short anneal: the zero-temperature relaxation at its end still brings every
# state to the torque bound, so these are genuine (if less coarsened) states.
SHORT = Schedule(t_start=1.5, t_end=0.02, sweeps=30)


def _config(out: Path, **changes) -> GenerateConfig:
    # Built afresh (not dataclasses.replace): ratios and out are resolved from
    # the other fields at construction.
    base = dict(
        kind="typeI",
        n=N,
        out=out,
        seed=SEED,
        n_test=N_TEST,
        lattice=LATTICE,
        workers=1,
        phases=PHASES,
        chunk=5,
        schedule=SHORT,
    )
    return GenerateConfig(**{**base, **changes})


def _arrays(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return found


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A complete Type I dataset: 12 configurations of 16x16, 3 LR phases, chunks of 5."""
    out = tmp_path_factory.mktemp("tiny") / "typeI.h5"
    return generate(_config(out))


def test_layout_shapes_and_chunking(tiny):
    with h5py.File(tiny, "r") as f:
        assert set(f) == {"hr", "lr", "lr_phases"}
        assert f["hr"].shape == (N, LATTICE, LATTICE, 3)
        assert f["hr"].dtype == np.float32
        assert f["hr"].chunks == (1, LATTICE, LATTICE, 3)
        assert set(f["lr"]) == {"x4", "x8"}  # x16 would leave a 1x1 image
        for r in (4, 8):
            h = LATTICE // r
            lr = f[f"lr/x{r}"]
            assert lr.shape == (N, h, h, 3) and lr.dtype == np.float32
            assert lr.chunks == (1, h, h, 3)
            assert lr.compression == dataset_format.COMPRESSION["compression"]
            assert f[f"lr_phases/x{r}"].shape == (N, PHASES, h, h, 3)
            assert f[f"lr_phases/x{r}"].chunks == (1, PHASES, h, h, 3)
            assert f[f"lr_phases/x{r}_offsets"].shape == (N, PHASES, 2)
            # Per row too: a chunk shared by rows would be rewritten after its
            # first rows were committed, which a kill could corrupt.
            assert f[f"lr_phases/x{r}_offsets"].chunks == (1, PHASES, 2)
        assert f["hr"].compression == dataset_format.COMPRESSION["compression"]


def test_attributes_record_parameters(tiny):
    ham = make_hamiltonian("typeI")
    with h5py.File(tiny, "r") as f:
        a = f.attrs
        assert a["kind"] == "typeI"
        assert (a["lattice"], a["n"], a["n_test"], a["seed"], a["phases"]) == (
            LATTICE,
            N,
            N_TEST,
            SEED,
            PHASES,
        )
        assert list(a["ratios"]) == [4, 8]
        assert json.loads(a["hamiltonian"]) == json.loads(json.dumps(hamiltonian_attrs(ham)))
        assert json.loads(a["schedule"]) == json.loads(json.dumps(schedule_attrs(SHORT, ham)))
        assert a["version"] == magsr_tf.__version__
        assert a["n_done"] == N and bool(a["complete"])
        assert "default_rng([seed, i])" in a["rng"]
        assert a["backend"] in ("numpy", "numba")
        assert a["created"]


def test_open_info_describes_the_split(tiny):
    info = open_info(tiny)
    assert info == DatasetInfo(
        path=tiny,
        kind="typeI",
        lattice=LATTICE,
        n=N,
        n_test=N_TEST,
        ratios=(4, 8),
        phases=PHASES,
        channels=3,
    )
    assert info.n_train == N - N_TEST
    check_ratio(info, 4)
    check_ratio(info, 8)
    check_finite(tiny, 4)


def test_states_are_zero_temperature_unit_spins(tiny):
    with h5py.File(tiny, "r") as f:
        hr = f["hr"][()]
    np.testing.assert_allclose(np.linalg.norm(hr, axis=-1), 1.0, atol=1e-5)
    torque = max_torque(hr, make_hamiltonian("typeI"))
    assert torque.max() < 1e-2, torque
    # Distinct seeds give distinct states (not one state copied N times).
    assert len({row.tobytes() for row in hr}) == N


def test_type_ii_states_meet_the_torque_bound(tmp_path):
    config = _config(tmp_path / "typeII.h5", kind="typeII", n=3, n_test=1, phases=0)
    with h5py.File(generate(config), "r") as f:
        hr = f["hr"][()]
        assert "lr_phases" not in f
    np.testing.assert_allclose(np.linalg.norm(hr, axis=-1), 1.0, atol=1e-5)
    assert max_torque(hr, make_hamiltonian("typeII")).max() < 1e-2


def test_lr_is_the_downsizing_op_of_hr(tiny):
    with h5py.File(tiny, "r") as f:
        hr = f["hr"][()]
        for r in (4, 8):
            np.testing.assert_allclose(f[f"lr/x{r}"][()], downsample(hr, r), rtol=0, atol=1e-6)


def test_phases_are_downsamples_of_shifted_states(tiny):
    with h5py.File(tiny, "r") as f:
        hr = f["hr"][()]
        for r in (4, 8):
            images = f[f"lr_phases/x{r}"][()]
            offsets = f[f"lr_phases/x{r}_offsets"][()]
            assert offsets.min() >= 0 and offsets.max() < r
            for i in range(N):
                pairs = {tuple(o) for o in offsets[i]}
                assert len(pairs) == PHASES and (0, 0) not in pairs
                np.testing.assert_array_equal(offsets[i], phase_offsets(SEED, i, r, PHASES))
                for p, (dy, dx) in enumerate(offsets[i]):
                    shifted = np.roll(hr[i], (-int(dy), -int(dx)), axis=(0, 1))
                    np.testing.assert_allclose(
                        images[i, p], downsample(shifted[None], r)[0], rtol=0, atol=1e-6
                    )
                    # A sub-LR-pixel shift samples other HR pixels: a different image.
                    assert np.abs(images[i, p] - f[f"lr/x{r}"][i]).max() > 1e-3


def test_phase_offsets_deterministic_and_distinct_per_row():
    a = phase_offsets(SEED, 5, 8, 63)
    assert len({tuple(o) for o in a}) == 63 and (0, 0) not in {tuple(o) for o in a}
    np.testing.assert_array_equal(a, phase_offsets(SEED, 5, 8, 63))
    assert not np.array_equal(phase_offsets(SEED, 5, 8, 4), phase_offsets(SEED, 6, 8, 4))


def test_data_do_not_depend_on_chunking_or_workers(tiny, tmp_path):
    reference = _arrays(tiny)
    for changes in ({"chunk": 2}, {"chunk": None, "workers": 2}):
        other = _arrays(generate(_config(tmp_path / f"{len(changes)}.h5", **changes)))
        assert other.keys() == reference.keys()
        for name, data in reference.items():
            assert other[name].tobytes() == data.tobytes(), (changes, name)


def test_interrupted_run_leaves_readable_file_and_resumes(tiny, tmp_path):
    out = tmp_path / "resumed.h5"

    def interrupt_in_second_chunk(done: int, total: int) -> None:
        if done > 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(_config(out), progress=interrupt_in_second_chunk)
    partial = partial_path(out)
    assert not out.exists() and partial.exists()
    with h5py.File(partial, "r") as f:
        assert int(f.attrs["n_done"]) == 5 and not bool(f.attrs["complete"])
        first_rows = f["hr"][:5]
        assert np.isfinite(first_rows).all()
    with pytest.raises(MagsrError, match="unfinished generation"):
        open_info(partial)
    with pytest.raises(MagsrError, match="unfinished generation is at"):
        open_info(out)

    seen: list[tuple[int, int]] = []
    assert generate(_config(out), progress=lambda d, t: seen.append((d, t))) == out
    assert seen[0] == (5, N) and seen[-1] == (N, N)
    assert not partial.exists()
    resumed, reference = _arrays(out), _arrays(tiny)
    for name, data in reference.items():
        assert resumed[name].tobytes() == data.tobytes(), name
    np.testing.assert_array_equal(resumed["hr"][:5], first_rows)


def test_complete_file_with_same_parameters_is_left_as_is(tiny):
    before = file_digest(tiny)
    seen: list[tuple[int, int]] = []
    assert generate(_config(tiny), progress=lambda d, t: seen.append((d, t))) == tiny
    assert seen == [(N, N)]
    assert file_digest(tiny) == before


@pytest.mark.parametrize(
    ("changes", "what"),
    [
        ({"n": N + 1}, "n: 12 in the file, 13 requested"),
        ({"seed": SEED + 1}, "seed"),
        ({"phases": 0}, "phases"),
        ({"schedule": replace(SHORT, sweeps=31)}, "schedule differs"),
    ],
)
def test_existing_file_with_other_parameters_is_refused(tiny, changes, what):
    before = file_digest(tiny)
    with pytest.raises(MagsrError, match="exists with other parameters") as err:
        generate(_config(tiny, **changes))
    assert what in str(err.value) and "\n" not in str(err.value)
    assert file_digest(tiny) == before


def _interrupt(done: int, total: int) -> None:
    raise KeyboardInterrupt


def test_unfinished_file_with_other_parameters_is_refused(tmp_path):
    out = tmp_path / "d.h5"
    with pytest.raises(KeyboardInterrupt):
        generate(_config(out), progress=_interrupt)
    partial = partial_path(out)
    before = file_digest(partial)
    with pytest.raises(MagsrError, match="started with other parameters .*seed"):
        generate(_config(out, seed=SEED + 1))
    assert file_digest(partial) == before and not out.exists()


def test_foreign_files_are_never_overwritten(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    with pytest.raises(MagsrError, match="not a readable HDF5 file"):
        generate(_config(text))
    assert text.read_text() == "not HDF5"
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    before = file_digest(other)
    with pytest.raises(MagsrError, match="not a magsr-tf dataset"):
        generate(_config(other))
    assert file_digest(other) == before


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MagsrError, match="is a file, not a folder"):
        generate(_config(blocker / "sub" / "d.h5"))
    with pytest.raises(MagsrError, match="is a folder"):
        generate(_config(tmp_path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "typeIII"}, "unknown dataset type"),
        ({"n": 3, "n_test": 3}, "n > n_test"),
        ({"lattice": 17}, "must be even"),
        ({"lattice": 6}, "no ratio"),
        ({"phases": 16}, "at most r\\^2 - 1 = 15"),
        ({"ratios": (3,)}, "every ratio must divide"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"n": -1}, "n must be a non-negative integer"),
    ],
)
def test_bad_configurations_are_rejected(tmp_path, changes, message):
    with pytest.raises(MagsrError, match=message):
        _config(tmp_path / "x.h5", **changes)


def test_default_ratios_and_output():
    config = GenerateConfig(kind="typeII")
    assert config.ratios == (4, 8, 16) and config.n == 40_100 and config.n_test == 100
    assert config.out == Path("data/typeII.h5")
    assert GenerateConfig(kind="typeI", lattice=16, n=2, n_test=1).ratios == (4, 8)


def test_open_info_errors(tiny, tmp_path):
    with pytest.raises(MagsrError, match="dataset file not found"):
        open_info(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(MagsrError, match="not a readable HDF5"):
        open_info(junk)
    no_lr = tmp_path / "no_lr.h5"
    shutil.copy(tiny, no_lr)
    with h5py.File(no_lr, "a") as f:
        del f["lr"]
    with pytest.raises(MagsrError, match="no LR images"):
        open_info(no_lr)
    no_hr = tmp_path / "no_hr.h5"
    shutil.copy(tiny, no_hr)
    with h5py.File(no_hr, "a") as f:
        del f["hr"]
    with pytest.raises(MagsrError, match="no 'hr' dataset"):
        open_info(no_hr)


def test_check_ratio_errors(tiny, tmp_path):
    info = open_info(tiny)
    with pytest.raises(MagsrError, match="dataset has no LR images for ratio 16"):
        check_ratio(info, 16)
    wrong = tmp_path / "wrong.h5"
    shutil.copy(tiny, wrong)
    with h5py.File(wrong, "a") as f:
        del f["lr/x8"]
        f["lr/x8"] = np.zeros((N, 3, 3, 3), np.float32)
    with pytest.raises(MagsrError, match="wrong size"):
        check_ratio(open_info(wrong), 8)


@pytest.mark.parametrize("name", ["lr/x4", "lr_phases/x4", "hr"])
def test_check_finite_names_the_first_bad_row(tiny, tmp_path, monkeypatch, name):
    bad = tmp_path / "bad.h5"
    shutil.copy(tiny, bad)
    with h5py.File(bad, "a") as f:
        data = f[name][()]
        data[7].flat[5] = np.nan
        data[9].flat[0] = np.inf
        f[name][...] = data
    monkeypatch.setattr(dataset_format, "READ_BLOCK_BYTES", 1)  # one row per block: crosses blocks
    with pytest.raises(MagsrError, match=f"in {name} row 7"):
        check_finite(bad, 4)
    if name == "hr":
        with pytest.raises(MagsrError, match="in hr row 7"):
            check_finite(bad, 8)
        check_finite(bad, 4, hr=False)
    else:
        check_finite(bad, 8)  # the other ratio's LR images are clean


def test_next_chunk_aims_at_target_in_whole_units():
    unit = 16
    assert annealing._next_chunk(16, unit, 16, annealing.TARGET_CHUNK_SECONDS / 2) == 32
    assert annealing._next_chunk(16, unit, 16, 1e-3) == 64  # at most 4x growth
    assert annealing._next_chunk(64, unit, 64, 10 * annealing.TARGET_CHUNK_SECONDS) == unit
    assert annealing._next_chunk(48, unit, 48, annealing.TARGET_CHUNK_SECONDS) == 48


def test_interrupts_held_during_write_then_delivered():
    # A shell's background job inherits SIGINT ignored; the test needs Python's default.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached_end = False
    try:
        with pytest.raises(KeyboardInterrupt):
            with resume.interrupts_deferred():
                # raise_signal targets this thread (os.kill may reach another thread).
                signal.raise_signal(signal.SIGINT)
                reached_end = True
        assert reached_end
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
