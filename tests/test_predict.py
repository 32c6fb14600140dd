"""`predict`: inputs (.npy, .h5, pictures), local vs TF Serving REST, clear errors."""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
from conftest import call_main, unit_maps
from PIL import Image

pytest.importorskip("tensorflow")

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.inference.export import export_saved_model  # noqa: E402
from magsr_tf.io.inputs import load_inputs  # noqa: E402
from magsr_tf.io.pictures import normalize_component  # noqa: E402
from magsr_tf.jobs.predict import PredictConfig, predict  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402
from magsr_tf.serving.protocol import ServeConfig  # noqa: E402
from magsr_tf.serving.rest import make_server  # noqa: E402

SEED = 314
RATIO = 4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    built = {}
    for name, channels, padding in [("spins", 3, "periodic"), ("mz", 1, "reflect")]:
        sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=channels, padding=padding))
        (root / name).mkdir()
        sr_model.save(root / name / "model.keras")
        export_saved_model(sr_model, root / name, version=1)
        built[name] = sr_model
    (root / "untrained").mkdir()
    built["spins"].save(root / "untrained" / "model.keras")  # no SavedModel
    return root, built


def test_npy_single_and_batch(models, tmp_path):
    root, built = models
    one, many = unit_maps((6, 7, 3), SEED), unit_maps((3, 5, 5, 3), 1)
    np.save(tmp_path / "one.npy", one)
    np.save(tmp_path / "many.npy", many)
    out = tmp_path / "out"
    config = PredictConfig(
        model="spins",
        inputs=(str(tmp_path / "one.npy"), str(tmp_path / "many.npy")),
        out_dir=out,
        models_root=root,
    )
    results = predict(config)
    assert [r.name for r in results] == ["one", "many"]
    saved_one = np.load(out / "one_sr.npy")
    assert saved_one.shape == (6 * RATIO, 7 * RATIO, 3)
    np.testing.assert_allclose(saved_one, built["spins"](one[None]).numpy()[0], atol=1e-5)
    np.testing.assert_allclose(
        np.load(out / "many_sr.npy"), built["spins"](many).numpy(), atol=1e-5
    )
    png = np.asarray(Image.open(out / "one_sr.png"))
    assert png.shape == (6 * RATIO, 7 * RATIO, 3) and png.dtype == np.uint8
    with pytest.raises(MagsrError, match="already exists"):
        predict(config)


def test_h5_dataset_spec(models, tmp_path):
    root, built = models
    lr = unit_maps((5, 4, 4, 3), SEED)
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["hr"] = np.zeros((5, 16, 16, 3), "float32")
        f["lr/x4"] = lr
    (batch,) = load_inputs([f"{path}:lr/x4[1:3]"])
    np.testing.assert_array_equal(batch.lr, lr[1:3])
    (bare,) = load_inputs([str(path)])  # the only lr/x* dataset
    np.testing.assert_array_equal(bare.lr, lr)
    results = predict(
        PredictConfig(model=str(root / "spins"), inputs=(f"{path}:lr/x4[2]",), out_dir=tmp_path)
    )
    np.testing.assert_allclose(results[0].sr, built["spins"](lr[2:3]).numpy(), atol=1e-5)
    for bad in [f"{path}:lr/x16", f"{path}:lr/x4[9]", f"{path}:lr/x4[a:b]", f"{path}:hr/none"]:
        with pytest.raises(MagsrError):
            load_inputs([bad])


def test_pictures_one_and_three_components(models, tmp_path):
    root, built = models
    rng = np.random.default_rng(SEED)
    paths = []
    for c in "xyz":
        pixels = rng.integers(0, 256, size=(9, 11)).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"m{c}.png")
        paths.append(str(tmp_path / f"m{c}.png"))
    (mz,) = predict(
        PredictConfig(model="mz", inputs=(paths[2],), out_dir=tmp_path / "o1", models_root=root)
    )
    expected_lr = normalize_component(np.asarray(Image.open(paths[2]), dtype=np.float64))
    np.testing.assert_allclose(
        mz.sr[0], built["mz"](expected_lr[None, :, :, None]).numpy()[0], atol=1e-5
    )
    assert np.load(tmp_path / "o1" / "mz_sr.npy").shape == (9 * RATIO, 11 * RATIO, 1)
    (xyz,) = predict(
        PredictConfig(model="spins", inputs=tuple(paths), out_dir=tmp_path / "o3", models_root=root)
    )
    assert xyz.sr.shape == (1, 9 * RATIO, 11 * RATIO, 3)
    with pytest.raises(MagsrError, match="one image"):
        load_inputs(paths[:2])
    with pytest.raises(MagsrError, match="expects 3 component"):
        predict(
            PredictConfig(model="spins", inputs=(paths[0],), out_dir=tmp_path, models_root=root)
        )


def test_large_map_is_tiled_exactly(models, tmp_path):
    root, built = models
    big = unit_maps((1, 130, 121, 3), SEED)  # larger than one tile plus margins
    np.save(tmp_path / "big.npy", big)
    (result,) = predict(
        PredictConfig(
            model="spins", inputs=(str(tmp_path / "big.npy"),), out_dir=tmp_path, models_root=root
        )
    )
    np.testing.assert_allclose(result.sr, built["spins"](big).numpy(), atol=1e-5)


def test_server_gives_the_local_answer(models, tmp_path):
    root, _ = models
    srv = make_server(ServeConfig(models_root=root, port=0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        lr = unit_maps((2, 6, 6, 3), SEED)
        np.save(tmp_path / "lr.npy", lr)
        inputs = (str(tmp_path / "lr.npy"),)
        local = predict(
            PredictConfig(model="spins", inputs=inputs, out_dir=tmp_path / "a", models_root=root)
        )
        remote = predict(
            PredictConfig(model="spins", inputs=inputs, out_dir=tmp_path / "b", server=srv.url)
        )
        np.testing.assert_allclose(remote[0].sr, local[0].sr, atol=1e-5)
        with pytest.raises(MagsrError, match="404"):
            predict(PredictConfig(model="nope", inputs=inputs, out_dir=tmp_path, server=srv.url))
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def test_cli_bad_inputs_are_one_line_errors(models, tmp_path, capsys, monkeypatch):
    root, _ = models
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "data.txt").write_text("1 2 3")
    np.save(tmp_path / "one_channel.npy", unit_maps((4, 4, 1), SEED))
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    np.save(tmp_path / "ok.npy", unit_maps((4, 4, 3), SEED))
    cases = [
        ["spins", tmp_path / "notes.png"],
        ["spins", tmp_path / "missing.png"],
        ["spins", tmp_path / "data.txt"],
        ["spins", tmp_path / "one_channel.npy"],
        ["spins", tmp_path / "strings.npy"],
        ["untrained", tmp_path / "ok.npy"],
        ["no_such_model", tmp_path / "ok.npy"],
        ["spins", tmp_path / "ok.npy", "--server", "ftp://example"],
    ]
    for args in cases:
        code, captured = call_main(
            monkeypatch, capsys, "predict", *args, "--root", root, "--out", tmp_path / "o"
        )
        assert code == 1, (args, captured.err)
        assert "Traceback" not in captured.err
        assert (
            captured.err.strip().startswith("Error:")
            and len(captured.err.strip().splitlines()) == 1
        )
    args = ["spins", tmp_path / "ok.npy", "--root", root, "--out", tmp_path / "o"]
    code, captured = call_main(monkeypatch, capsys, "predict", *args)
    assert code == 0 and (tmp_path / "o" / "ok_sr.npy").is_file()
