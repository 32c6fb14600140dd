"""evaluate, experiment crossfeed/noise and report, run on a tiny trained model and tiny data.

Every command's JSON is checked against an independent recomputation of at
least one of its numbers.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

keras = pytest.importorskip("keras")
from typer.testing import CliRunner  # noqa: E402

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.ops.downsample import downsample  # noqa: E402
from magsr_tf.ops.spins import unit_normalize  # noqa: E402

DATA_SEED = 7
TRAIN_SEED = 3
LATTICE = 32
RATIO = 4
N_TRAIN = 8
N_TEST = 4


def _labyrinth_like(rng, n, size):
    """Sums of three random periodic Neel cycloids, normalized: smooth textures."""
    iy, ix = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    states = np.zeros((n, size, size, 3))
    for k in range(n):
        for _ in range(3):
            m = rng.integers(-3, 4, size=2)
            m = m if m.any() else np.array([2, 0])
            q = 2 * np.pi * m / size
            phase = q[0] * ix + q[1] * iy + rng.uniform(0, 2 * np.pi)
            q_hat = q / np.hypot(*q)
            states[k] += np.stack(
                [np.sin(phase) * q_hat[0], np.sin(phase) * q_hat[1], np.cos(phase)], -1
            )
    return unit_normalize(states)


def _domains(rng, n, size):
    """Up/down domains with tanh walls from a smooth random periodic field."""
    k = np.fft.fftfreq(size)
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    states = []
    for _ in range(n):
        noise = np.fft.fft2(rng.normal(size=(size, size))) * np.exp(-((kk / 0.06) ** 2))
        field = np.real(np.fft.ifft2(noise))
        sz = np.tanh(field / (0.3 * field.std()))
        angle = rng.uniform(0, 2 * np.pi)
        inplane = np.sqrt(np.clip(1 - sz**2, 0, 1))
        states.append(np.stack([inplane * np.cos(angle), inplane * np.sin(angle), sz], -1))
    return unit_normalize(np.array(states))


def _write_dataset(path, kind, hr):
    hamiltonian = (
        {"kind": "typeI", "J": 1.0, "D": 0.3, "dmi": "interfacial"}
        if kind == "typeI"
        else {"kind": "typeII", "J": 1.0, "D": 0.03, "K": 0.215}
    )
    with h5py.File(path, "w") as f:
        f["hr"] = hr.astype(np.float32)
        f["lr/x4"] = downsample(hr, RATIO)
        f.attrs["n_test"] = N_TEST
        f.attrs["kind"] = kind
        f.attrs["hamiltonian"] = json.dumps(hamiltonian)
    return path


def _train_tiny(lr_train, path):
    from magsr_tf.nn.model import ModelConfig, build_models

    keras.utils.set_random_seed(TRAIN_SEED)
    sr_model, training_model = build_models(ModelConfig(ratio=RATIO))
    training_model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    training_model.fit(lr_train, lr_train, batch_size=4, epochs=15, verbose=0)
    path.mkdir(parents=True)
    sr_model.save(path / "model.keras")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(DATA_SEED)
    n = N_TRAIN + N_TEST
    data_i = _write_dataset(root / "typeI.h5", "typeI", _labyrinth_like(rng, n, LATTICE))
    data_ii = _write_dataset(root / "typeII.h5", "typeII", _domains(rng, n, LATTICE))
    models = root / "saved_models"
    with h5py.File(data_i) as f:
        net_i = _train_tiny(f["lr/x4"][:N_TRAIN], models / "net_i")
    with h5py.File(data_ii) as f:
        net_ii = _train_tiny(f["lr/x4"][:N_TRAIN], models / "net_ii")
    return {"root": root, "data_i": data_i, "data_ii": data_ii, "net_i": net_i, "net_ii": net_ii}


def _run(args):
    from magsr_tf_cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def _test_split(path):
    with h5py.File(path) as f:
        return f["hr"][-N_TEST:], f["lr/x4"][-N_TEST:]


def _predict(model_dir, lr):
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    return np.asarray(model.predict(lr, verbose=0), dtype=np.float64)


def test_evaluate_command(setup, tmp_path):
    out_json = tmp_path / "eval.json"
    output = _run(
        [
            "evaluate", setup["net_i"], "--data", setup["data_i"],
            "--json", out_json, "--figures", tmp_path / "fig",
        ]
    )  # fmt: skip
    assert "SR network" in output and "Bicubic" in output
    result = json.loads(out_json.read_text())
    assert result["n_images"] == N_TEST and result["ratio"] == RATIO
    for path in result["figures"]:
        assert path.endswith(".png") and (tmp_path / "fig").exists()
    hr, lr = _test_split(setup["data_i"])
    # Independent recomputation: the SR network's MSE with a fresh model load.
    sr = _predict(setup["net_i"], lr)
    sr /= np.linalg.norm(sr, axis=-1, keepdims=True)
    mse_sr = np.mean((hr - sr) ** 2, axis=(1, 2, 3))
    assert result["metrics"]["sr"]["mse"]["mean"] == pytest.approx(mse_sr.mean(), rel=1e-4)
    psnr_sr = 10 * np.log10(4 / mse_sr)
    assert result["metrics"]["sr"]["psnr"]["std"] == pytest.approx(psnr_sr.std(), rel=1e-4)
    # The paper's baseline straight from TensorFlow.
    import tensorflow as tf

    bicubic = tf.image.resize(lr, (LATTICE, LATTICE), method="bicubic").numpy()
    corr = np.mean(np.sum(hr * bicubic, axis=-1), axis=(1, 2))
    assert result["metrics"]["bicubic_paper"]["corr"]["mean"] == pytest.approx(corr.mean(), 1e-5)
    # Honest baselines beat the paper's misaligned ones on data made by the downsizer.
    for m in ("bilinear", "bicubic"):
        assert result["metrics"][m]["mse"]["mean"] < result["metrics"][f"{m}_paper"]["mse"]["mean"]
    gains = result["gains_db"]["over_aligned"]["bicubic"]
    expected = psnr_sr.mean() - result["metrics"]["bicubic"]["psnr"]["mean"]
    assert gains == pytest.approx(expected, rel=1e-4)
    # Physical metrics: the ground truth's energy under the dataset's Hamiltonian.
    from magsr_tf.physics.hamiltonian import energy_per_spin, make_hamiltonian

    energy = energy_per_spin(hr, make_hamiltonian("typeI"))
    got = result["physical"]["ground_truth"]["energy_per_spin"]["mean"]
    assert got == pytest.approx(energy.mean(), rel=1e-6)
    assert "topological_charge" in result["physical"]["sr"]


def test_crossfeed_command(setup, tmp_path):
    out = tmp_path / "cf"
    output = _run(
        [
            "experiment", "crossfeed", setup["net_i"], setup["net_ii"],
            "--data-i", setup["data_i"], "--data-ii", setup["data_ii"], "--out", out,
        ]
    )  # fmt: skip
    assert "Net I (Type II)" in output
    result = json.loads((out / "crossfeed_x4.json").read_text())
    assert set(result["pairs"]) == {
        "Net I (Type I)",
        "Net I (Type II)",
        "Net II (Type I)",
        "Net II (Type II)",
    }
    assert sorted(result["ranking"]) == sorted(result["pairs"])
    hr, lr = _test_split(setup["data_ii"])
    sr = _predict(setup["net_i"], lr)
    corr = np.mean(np.sum(hr * sr, axis=-1), axis=(1, 2))
    np.testing.assert_allclose(result["pairs"]["Net I (Type II)"]["per_image"]["corr"], corr, 1e-4)
    for path in result["figures"]:
        assert (out / path.split("/")[-1]).exists()


def test_noise_command(setup, tmp_path):
    out = tmp_path / "noise"
    output = _run(
        [
            "experiment", "noise", setup["net_ii"], "--data", setup["data_ii"],
            "--alphas", "0,1,50", "--iterations", "3", "--snapshots", "1,3", "--out", out,
        ]
    )  # fmt: skip
    assert "alpha" in output
    result = json.loads((out / "noise_typeII_x4.json").read_text())
    assert result["alphas"] == [0.0, 1.0, 50.0] and result["iterations"] == 3
    # Independent recomputation of alpha = 0: L2-normalized clean input, then two passes.
    hr, lr = _test_split(setup["data_ii"])
    x = lr / np.linalg.norm(lr, axis=-1, keepdims=True)
    corrs = []
    for _ in range(2):
        sr = _predict(setup["net_ii"], x.astype(np.float32))
        corrs.append(np.mean(np.sum(hr * sr, axis=-1)))
        x = downsample(sr, RATIO)
    np.testing.assert_allclose(result["per_alpha"]["0"]["mean_corr"][:2], corrs, rtol=1e-3)
    curve = result["per_alpha"]["1"]["mean_corr"]
    assert result["per_alpha"]["1"]["max_mean_corr"] == pytest.approx(max(curve))
    assert len(result["figures"]) == 2


def test_report_command(setup, tmp_path):
    models = setup["root"] / "saved_models"
    _run(["evaluate", setup["net_i"], "--data", setup["data_i"]])
    out = tmp_path / "report.md"
    output = _run(["report", "--models", models, "--out", out])
    assert "2 model(s)" in output
    text = out.read_text()
    assert "## Model `net_i`" in text and "## Model `net_ii`" in text
    evaluation = json.loads((setup["net_i"] / "evaluation_typeI_x4.json").read_text())
    bicubic_mse = evaluation["metrics"]["bicubic"]["mse"]["mean"]
    assert f"{bicubic_mse:.4g}" in text
    assert "![evaluate_typeI_x4]" in text


def test_bad_data_is_a_user_error(setup, tmp_path):
    from magsr_tf.evaluation.evaluate import EvaluateConfig, evaluate

    with pytest.raises(MagsrError, match="not found"):
        evaluate(EvaluateConfig(model=setup["net_i"], data=str(tmp_path / "missing.h5")))
    with pytest.raises(MagsrError, match="ratio"):
        with h5py.File(tmp_path / "x8.h5", "w") as f:
            f["hr"] = np.zeros((2, 16, 16, 3), np.float32)
            f["lr/x8"] = np.zeros((2, 2, 2, 3), np.float32)
            f.attrs["n_test"] = 1
        evaluate(EvaluateConfig(model=setup["net_i"], data=str(tmp_path / "x8.h5")))


def test_json_is_strict_with_infinite_psnr(tmp_path):
    from magsr_tf.evaluation.evaluate import baseline_maps, score_maps
    from magsr_tf.io.writers import write_json

    hr = _labyrinth_like(np.random.default_rng(DATA_SEED), 2, 16)
    result = score_maps(hr, hr, baseline_maps(downsample(hr, 4), 4), "typeI", 4, physical=False)
    path = write_json(tmp_path / "r.json", result)
    loaded = json.loads(path.read_text())  # strict: no NaN/Infinity tokens
    assert loaded["metrics"]["sr"]["psnr"]["mean"] == "inf"
    assert loaded["metrics"]["sr"]["mse"]["mean"] == 0.0


class _BicubicNet:
    """Stand-in SR model: aligned bicubic up-sampling projected onto unit spins."""

    def __call__(self, lr, training=False):
        from magsr_tf.ops.interpolation import upsample

        return unit_normalize(upsample(np.asarray(lr), RATIO, "bicubic"))


def test_recursive_process_chunks_and_snapshots():
    from magsr_tf.evaluation.experiments import recursive_process

    hr = _labyrinth_like(np.random.default_rng(DATA_SEED), 5, 16)
    lr = downsample(hr, RATIO)
    runs = [
        recursive_process(_BicubicNet(), lr, hr, RATIO, 3, keep=(1, 3), keep_chains=[4, 0],
                          batch_size=b)
        for b in (2, 8)
    ]  # fmt: skip
    (c2, k2), (c8, k8) = runs
    assert c2.shape == (3, 5)
    np.testing.assert_allclose(c2, c8, atol=1e-6)  # chunking does not change the chains
    assert set(k2) == {1, 3} and k2[1].shape == (2, 16, 16, 3)
    np.testing.assert_allclose(k2[3], k8[3], atol=1e-6)
    expected = np.mean(np.sum(hr[4] * _BicubicNet()(lr[4:5])[0], axis=-1))
    assert c2[0, 4] == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(k2[1][0], _BicubicNet()(lr[4:5])[0], atol=1e-6)


def test_type_ii_physical_metrics():
    from magsr_tf.evaluation.evaluate import baseline_maps, score_maps
    from magsr_tf.physics.hamiltonian import energy_per_spin
    from magsr_tf.physics.hamiltonian_io import hamiltonian_from_attrs
    from magsr_tf.physics.observables import domain_wall_length

    hr = _domains(np.random.default_rng(DATA_SEED), 3, LATTICE)
    lr = downsample(hr, RATIO)
    ham = hamiltonian_from_attrs({"kind": "typeII", "J": 1.0, "D": 0.03, "K": 0.2}, "typeII")
    assert ham.K == 0.2  # parameters come from the file's attribute
    sr = unit_normalize(lr.repeat(RATIO, axis=1).repeat(RATIO, axis=2))
    result = score_maps(hr, sr, baseline_maps(lr, RATIO), "typeII", RATIO, ham)
    physical = result["physical"]
    assert set(physical["sr"]) == {
        "energy_per_spin",
        "qz_peak",
        "topological_charge",
        "wall_fraction",
        "wall_length",
    }
    assert physical["ground_truth"]["energy_per_spin"]["mean"] == pytest.approx(
        energy_per_spin(hr, ham).mean()
    )
    deviation = np.abs(domain_wall_length(sr) - domain_wall_length(hr)).mean()
    assert result["physical_error"]["sr"]["wall_length"]["mean"] == pytest.approx(deviation)


def test_spin_colours():
    from magsr_tf.evaluation.figures import spin_rgb

    spins = np.array([[[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0]]], dtype=np.float64)
    rgb = spin_rgb(spins)
    np.testing.assert_allclose(rgb[0, 0], [1, 1, 1], atol=1e-9)  # +z white
    np.testing.assert_allclose(rgb[0, 1], [0, 0, 0], atol=1e-9)  # -z black
    np.testing.assert_allclose(rgb[0, 2], [1, 0, 0], atol=1e-9)  # +x red
    np.testing.assert_allclose(rgb[0, 3], [0, 1, 1], atol=1e-9)  # -x cyan
    grey = spin_rgb(np.array([[[-1.0], [0.0], [1.0]]]))
    np.testing.assert_allclose(grey[0, :, 0], [0, 0.5, 1])
