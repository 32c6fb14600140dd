"""Bounded memory and whole results of `predict` (issue 25).

Refusals from headers before any model is loaded, SR streamed into a mapped
``.npy`` and a banded PNG, unique output names, paired writes and the removal
of stale temporaries of dead runs.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import call_main, unit_maps
from PIL import Image

pytest.importorskip("tensorflow")

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.inference import apply as apply_module  # noqa: E402
from magsr_tf.inference.export import export_saved_model  # noqa: E402
from magsr_tf.inference.tiling import NpyBands, tiled_apply  # noqa: E402
from magsr_tf.io import pictures  # noqa: E402
from magsr_tf.io.inputs import MEMORY_ENV, load_inputs, memory_limit, parse_memory  # noqa: E402
from magsr_tf.jobs import predict as predict_module  # noqa: E402
from magsr_tf.jobs.predict import PredictConfig, predict  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402

SEED = 2025
RATIO = 4


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    sr_model, _ = build_models(ModelConfig(ratio=RATIO, channels=3, padding="periodic"))
    (root / "spins").mkdir()
    sr_model.save(root / "spins" / "model.keras")
    export_saved_model(sr_model, root / "spins", version=1)
    return root, sr_model


def _header_only_npy(path, shape):
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": shape}
        )


def _one_line_error(code, captured, fragment):
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), captured.err
    assert fragment in lines[0], lines[0]


def test_memory_sizes_and_limit(monkeypatch):
    assert parse_memory("4G") == 4 * 2**30 and parse_memory("1500M") == 1500 * 2**20
    assert parse_memory("2.5GB") == int(2.5 * 2**30) and parse_memory(123) == 123
    with pytest.raises(MagsrError):
        parse_memory("lots")
    monkeypatch.setenv(MEMORY_ENV, "3G")
    assert memory_limit() == 3 * 2**30 and memory_limit("1G") == 2**30
    monkeypatch.delenv(MEMORY_ENV)
    assert memory_limit() > 0


def test_huge_and_empty_npy_are_one_line_errors(model_root, tmp_path, capsys, monkeypatch):
    root, _ = model_root
    _header_only_npy(tmp_path / "huge.npy", (100000, 100000, 3))  # 120 GB claimed
    (tmp_path / "empty.npy").write_bytes(b"")
    for name, fragment in [("huge.npy", "GB of memory"), ("empty.npy", "cannot read")]:
        code, captured = call_main(
            monkeypatch, capsys, "predict", "spins", tmp_path / name, "--root", root,
            "--out", tmp_path / "o",
        )  # fmt: skip
        _one_line_error(code, captured, fragment)
    assert not (tmp_path / "o").exists()


def test_too_large_sr_is_refused_before_the_model_loads(model_root, tmp_path, monkeypatch, capsys):
    root, _ = model_root
    np.save(tmp_path / "lr.npy", unit_maps((512, 512, 3), SEED))  # SR 2048^2 x 3: 48 MB

    def no_model(config):
        raise AssertionError("the model was loaded before the memory check")

    monkeypatch.setattr(predict_module, "make_predictor", no_model)
    config = PredictConfig(
        model="spins", inputs=(str(tmp_path / "lr.npy"),), out_dir=tmp_path / "o",
        models_root=root, max_memory="700M",
    )  # fmt: skip
    with pytest.raises(MagsrError, match=r"about \d+\.\d+ GB of memory; the limit is 0\.68 GB"):
        predict(config)
    code, captured = call_main(
        monkeypatch, capsys, "predict", "spins", tmp_path / "lr.npy", "--root", root,
        "--out", tmp_path / "o", "--max-memory", "700M",
    )  # fmt: skip
    _one_line_error(code, captured, "the limit is 0.68 GB")
    assert not (tmp_path / "o").exists()


def test_pictures_checked_from_the_header(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((300, 400), np.uint8)).save(tmp_path / "mz.png")
    with pytest.raises(MagsrError, match="400x300 pixels"):
        load_inputs([str(tmp_path / "mz.png")], limit=1_000_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 120000 > 2 x 1000: a "bomb"
    with pytest.raises(MagsrError, match="decompression bomb"):
        pictures.read_image(tmp_path / "mz.png")


def test_streamed_tiles_and_banded_png_equal_the_in_memory_result(tmp_path):
    rng = np.random.default_rng(SEED)
    lr = rng.uniform(-0.5, 0.5, size=(2, 37, 29, 3)).astype(np.float32)

    def fn(x):  # any SR of the right shape: nearest-neighbour x2 plus a local mix
        up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
        return np.tanh(up + 0.1 * np.roll(up, 1, axis=2))

    expected = tiled_apply(fn, lr, 2, tile=8, margin=0, padding="reflect")
    bands = NpyBands(tmp_path / "sr.npy", (2, 74, 58, 3))
    tiled_apply(fn, lr, 2, tile=8, margin=0, padding="reflect", out=bands)
    np.testing.assert_array_equal(np.load(tmp_path / "sr.npy"), expected)
    monkeypatch_rows = 7  # bands that do not divide the height
    original = pictures.PNG_BAND_ROWS
    pictures.PNG_BAND_ROWS = monkeypatch_rows
    try:
        pictures.write_png(tmp_path / "sr.png", bands.map(1))
        pictures.write_png(tmp_path / "mz.png", expected[1][..., 2:])
    finally:
        pictures.PNG_BAND_ROWS = original
    png = np.asarray(Image.open(tmp_path / "sr.png"))
    np.testing.assert_array_equal(png, pictures.spins_to_uint8(expected[1]))
    mz = np.asarray(Image.open(tmp_path / "mz.png"))
    np.testing.assert_array_equal(mz, pictures.spins_to_uint8(expected[1][..., 2:]))


def test_clashing_output_names_are_refused_before_any_work(model_root, tmp_path):
    root, _ = model_root
    for folder in "ab":
        (tmp_path / folder).mkdir()
        np.save(tmp_path / folder / "x.npy", unit_maps((5, 5, 3), SEED))
    inputs = (str(tmp_path / "a" / "x.npy"), str(tmp_path / "b" / "x.npy"))
    for overwrite in (False, True):
        config = PredictConfig(
            model="spins", inputs=inputs, out_dir=tmp_path / "o", models_root=root,
            overwrite=overwrite,
        )  # fmt: skip
        with pytest.raises(MagsrError, match=r"would both write .*x_sr\.npy"):
            predict(config)
        assert not (tmp_path / "o").exists()


def test_a_failed_write_leaves_nothing(model_root, tmp_path, monkeypatch):
    root, _ = model_root
    np.save(tmp_path / "x.npy", unit_maps((5, 5, 3), SEED))
    (tmp_path / "o").mkdir()

    def broken_png(path, spins):
        raise KeyboardInterrupt  # like Ctrl-C or SIGTERM turned into an exception

    monkeypatch.setattr(predict_module, "write_png", broken_png)
    config = PredictConfig(
        model="spins", inputs=(str(tmp_path / "x.npy"),), out_dir=tmp_path / "o", models_root=root
    )
    with pytest.raises(KeyboardInterrupt):
        predict(config)
    assert list((tmp_path / "o").iterdir()) == []  # no .npy without its .png, no temporary


def test_stale_temporaries_of_dead_runs_are_removed(model_root, tmp_path):
    root, _ = model_root
    np.save(tmp_path / "x.npy", unit_maps((5, 5, 3), SEED))
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    stale = [out / f".tmp-magsr-predict-{dead_pid}-x_sr-0a1b2c3d.npy",
             out / f".tmp-.tmp-magsr-predict-{dead_pid}-x_sr-0a1b2c3d-k2j4.png"]  # fmt: skip
    live = out / f".tmp-magsr-predict-{live_pid}-y_sr-0a1b2c3d.npy"  # a concurrent run
    other = out / ".tmp-notes-abc.txt"  # not ours
    for path in [*stale, live, other]:
        path.write_bytes(b"partial")
    predict(PredictConfig(model="spins", inputs=(str(tmp_path / "x.npy"),), out_dir=out,
                          models_root=root))  # fmt: skip
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert (out / "x_sr.npy").is_file() and (out / "x_sr.png").is_file()


def test_api_streams_to_a_file_or_refuses(model_root, tmp_path):
    root, sr_model = model_root
    lr = unit_maps((40, 36, 3), SEED)
    in_memory = apply_module.super_resolve(lr, sr_model)
    mapped = apply_module.super_resolve(lr, sr_model, out=tmp_path / "sr.npy")
    assert isinstance(mapped, np.memmap) and mapped.shape == (160, 144, 3)
    np.testing.assert_allclose(mapped, in_memory, atol=1e-6)
    np.testing.assert_allclose(in_memory, sr_model(lr[None]).numpy()[0], atol=1e-5)
    with pytest.raises(MagsrError, match="MB of memory.*out='FILE.npy'"):
        apply_module.super_resolve(lr, sr_model, max_memory="1M")


def test_refine_states_its_memory_rule(tmp_path, monkeypatch):
    from magsr_tf.jobs.refine import RefineJob, run_refine

    np.save(tmp_path / "lr.npy", unit_maps((64, 64, 3), SEED))  # x8: 512^2, far below 4096
    monkeypatch.setenv(MEMORY_ENV, "500M")  # 16 copies of a 3 MB SR plus TensorFlow do not fit
    job = RefineJob(inputs=(str(tmp_path / "lr.npy"),), ratio=8, hamiltonian="typeI",
                    out_dir=tmp_path / "o")  # fmt: skip
    with pytest.raises(MagsrError, match=r"refining x8 needs about .* of memory; the limit"):
        run_refine(job)
    assert not (tmp_path / "o").exists()
