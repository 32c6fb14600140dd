"""Physics-informed reconstruction: recovers annealed states from their LR images."""

import json

import numpy as np
import pytest
from conftest import run_cli

from magsr_tf import MagsrError
from magsr_tf.evaluation import metrics
from magsr_tf.jobs.refine import RefineJob, run_refine
from magsr_tf.ops.downsample import downsample
from magsr_tf.ops.interpolation import upsample
from magsr_tf.ops.spins import unit_normalize
from magsr_tf.physics import hamiltonian as phys
from magsr_tf.physics.anneal import anneal
from magsr_tf.priors.refine import RefineConfig, check_lr, refine

SEED = 4242
LATTICE = 64
RATIO = 4


@pytest.fixture(scope="module")
def type1_states():
    """Two annealed Type I labyrinths (64 x 64 holds about three spiral periods)."""
    rngs = [np.random.default_rng([SEED, i]) for i in range(2)]
    hr = anneal(phys.TypeI(), rngs, lattice=LATTICE)
    return hr, downsample(hr, RATIO)


def test_refine_recovers_annealed_type1(type1_states):
    hr, lr = type1_states
    result = refine(lr, RATIO, "typeI", config=RefineConfig(steps=150))
    bicubic = unit_normalize(upsample(lr, RATIO, "bicubic"))
    mse_refined = metrics.mse(hr, result.sr)
    mse_bicubic = metrics.mse(hr, bicubic)
    # The Hamiltonian pins what the LR image leaves open: far below interpolation.
    assert np.all(mse_refined < 1e-3)
    assert np.all(mse_refined < mse_bicubic / 20)
    np.testing.assert_allclose(np.linalg.norm(result.sr, axis=-1), 1.0, atol=1e-3)
    # Consistent with its input, and as low in energy as the ground truth (to 1e-3 per spin).
    np.testing.assert_allclose(downsample(result.sr, RATIO), lr, atol=2e-3)
    e_truth = phys.energy_per_spin(hr, phys.TypeI())
    np.testing.assert_allclose(phys.energy_per_spin(result.sr, phys.TypeI()), e_truth, atol=1e-3)
    np.testing.assert_allclose(result.energy_per_spin, e_truth, atol=1e-3)


def test_wrong_hamiltonian_does_worse(type1_states):
    # Exchange alone (no DMI) knows smoothness but not the texture's length scale.
    hr, lr = type1_states
    exchange_only = phys.TypeI(D=0.0)
    res_right = refine(lr, RATIO, phys.TypeI(), config=RefineConfig(steps=100))
    res_wrong = refine(lr, RATIO, exchange_only, config=RefineConfig(steps=100))
    assert metrics.mse(hr, res_right.sr).mean() < metrics.mse(hr, res_wrong.sr).mean() / 3


def test_init_callable_and_batches(type1_states):
    hr, lr = type1_states
    calls = []

    def init(batch):
        calls.append(len(batch))
        return upsample(batch, RATIO, "bilinear")

    result = refine(lr, RATIO, "typeI", init=init, config=RefineConfig(steps=20, batch_size=1))
    assert calls == [1, 1]
    assert result.sr.shape == hr.shape
    steps_recorded = [h["step"] for h in result.history if h["first"] == 0]
    assert steps_recorded[-1] == 20


@pytest.mark.parametrize(
    "lr, message",
    [
        (np.full((1, 4, 4, 3), np.nan), "NaN"),
        (np.full((1, 4, 4, 3), 0.9), "longer than 1"),
        (np.zeros((1, 4, 4, 1)), "shaped"),
    ],
)
def test_check_lr_rejects(lr, message):
    with pytest.raises(MagsrError, match=message):
        check_lr(lr)


def test_config_checks():
    with pytest.raises(MagsrError, match="constraint"):
        RefineConfig(constraint="exact")
    with pytest.raises(MagsrError, match="ratio"):
        refine(np.zeros((1, 4, 4, 3)), 3, "typeI")
    with pytest.raises(MagsrError, match="ratio"):
        RefineJob(inputs=("a.npy",), ratio=3)


def test_run_refine_writes_outputs_and_reads_dataset_hamiltonian(tmp_path, type1_states):
    _, lr = type1_states
    np.save(tmp_path / "lr.npy", lr)
    job = RefineJob(
        inputs=(str(tmp_path / "lr.npy"),),
        ratio=RATIO,
        hamiltonian="typeI",
        out_dir=tmp_path / "out",
        config=RefineConfig(steps=10),
    )
    (out,) = run_refine(job)
    sr = np.load(tmp_path / "out" / "lr_sr.npy")
    assert sr.shape == (2, LATTICE, LATTICE, 3)
    assert (tmp_path / "out" / "lr_sr.png").is_file()
    record = json.loads((tmp_path / "out" / "lr_refine.json").read_text())
    assert record["hamiltonian"]["kind"] == "typeI" and record["steps"] == 10
    with pytest.raises(MagsrError, match="already exists"):
        run_refine(job)


@pytest.mark.parametrize(
    "extra, make_input, message",
    [
        (["--hamiltonian", "typeIII"], None, "Unknown Hamiltonian"),
        (["--hamiltonian", "h.json"], None, "needs a 'kind'"),
        (["--hamiltonian", "typeI"], "nan", "NaN"),
        (["--hamiltonian", "typeI"], "long", "longer than 1"),
        (["--hamiltonian", "typeI", "--ratio", "3"], None, "ratio"),
    ],
)
def test_cli_bad_input_one_line_nothing_written(tmp_path, extra, make_input, message):
    lr = np.zeros((1, 4, 4, 3), np.float32)
    lr[..., 2] = 1.0
    if make_input == "nan":
        lr[0, 0, 0, 0] = np.nan
    elif make_input == "long":
        lr[..., 0] = 0.5
    np.save(tmp_path / "lr.npy", lr)
    (tmp_path / "h.json").write_text(json.dumps({"J": 1.0}))
    args = ["refine", "lr.npy", "--out", "out"] + (
        ["--ratio", "4"] if "--ratio" not in extra else []
    )
    proc = run_cli(*args, *extra, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) <= 2 and lines[0].startswith("Error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_init_model_of_another_ratio_is_refused(tmp_path):
    from magsr_tf.nn.model import ModelConfig, build_sr_model

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    build_sr_model(ModelConfig(ratio=8)).save(model_dir / "model.keras")
    lr = np.zeros((1, 4, 4, 3), np.float32)
    lr[..., 2] = 1.0
    np.save(tmp_path / "lr.npy", lr)
    job = RefineJob(
        inputs=(str(tmp_path / "lr.npy"),),
        ratio=4,
        hamiltonian="typeI",
        init=str(model_dir),
        out_dir=tmp_path / "out",
    )
    with pytest.raises(MagsrError, match="x8 model but --ratio is 4"):
        run_refine(job)
    assert not (tmp_path / "out").exists()


def test_refine_with_another_degradation(type1_states, tmp_path):
    # LR made by a wider blur: refine told the same blur recovers the state.
    hr, _ = type1_states
    lr = downsample(hr, RATIO, degradation="gaussian:1.5")
    result = refine(lr, RATIO, "typeI", config=RefineConfig(steps=150, degradation="gaussian:1.5"))
    assert metrics.mse(hr, result.sr).mean() < 1e-3
    np.save(tmp_path / "psf.npy", np.ones((5, 5)) / 25)
    with pytest.raises(MagsrError, match="separable"):
        RefineConfig(degradation=f"psf:{tmp_path / 'psf.npy'}")


def test_model_keeps_its_degradation(tmp_path):
    import keras

    from magsr_tf.nn.model import ModelConfig, build_models

    _, training = build_models(ModelConfig(ratio=4, degradation="gaussian:1.5"))
    training.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras", compile=False)
    assert "gaussian" in str(loaded.get_layer("downsample").get_config()["degradation"])
