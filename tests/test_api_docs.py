"""docs/api.md runs as written, and the Python API keeps its promises (issue 20)."""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = 11


def _doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_api_docs_run_as_written(tmp_path):
    blocks = _doc_blocks()
    assert len(blocks) >= 4
    script = tmp_path / "api_md.py"
    script.write_text("\n\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused:" in result.stdout and "NaN" in result.stdout


def test_import_is_light_and_registers_layers_on_keras_import():
    code = (
        "import sys, magsr_tf\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import keras, glob\n"
        "paths = sorted(glob.glob('saved_models/*/model.keras'))\n"
        "assert len(paths) >= 5, paths\n"
        "for p in paths:\n"
        "    keras.saving.load_model(p, compile=False)\n"
        "print(len(paths))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _lr(shape=(12, 12, 3)) -> np.ndarray:
    v = np.random.default_rng(SEED).normal(size=shape)
    return (0.9 * v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def tf_modules():
    tf = pytest.importorskip("tensorflow")
    import magsr_tf

    return tf, magsr_tf


def test_super_resolve_equals_the_saved_model(tf_modules):
    tf, magsr_tf = tf_modules
    lr = _lr()
    sr = magsr_tf.super_resolve(lr, "saved_models/typeI_x8")
    loaded = tf.saved_model.load(str(ROOT / "saved_models/typeI_x8/1"))
    ref = loaded.signatures["serving_default"](lr=tf.constant(lr[None]))["sr"].numpy()[0]
    assert sr.shape == (96, 96, 3)
    np.testing.assert_allclose(sr, ref, atol=1e-5)
    batch = magsr_tf.super_resolve(np.stack([lr, -lr]), "typeI_x8")
    assert batch.shape == (2, 96, 96, 3)
    np.testing.assert_allclose(batch[0], sr, atol=1e-5)


def test_super_resolve_tiles_large_maps_exactly(tf_modules):
    _, magsr_tf = tf_modules
    lr = _lr((120, 40, 3))  # taller than one tile plus margins
    model = magsr_tf.load_model("typeII_x4")
    tiled = magsr_tf.super_resolve(lr, model)
    whole = np.asarray(model(lr[None], training=False))[0]
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.full((8, 8, 3), 0.9, np.float32), "|m|"),
        (np.zeros((8, 8, 2), np.float32), "components"),
        (np.zeros((8, 8, 8, 8, 3), np.float32), "expected"),
        (np.zeros((1, 1, 3), np.float32), "2x2"),
    ],
)
def test_super_resolve_refuses_bad_arrays(tf_modules, bad, message):
    _, magsr_tf = tf_modules
    with pytest.raises(magsr_tf.MagsrError, match=re.escape(message)):
        magsr_tf.super_resolve(bad, "typeI_x8")


def test_one_component_array_needs_a_one_component_model(tf_modules):
    _, magsr_tf = tf_modules
    with pytest.raises(magsr_tf.MagsrError, match="takes 3 component"):
        magsr_tf.super_resolve(np.zeros((8, 8), np.float32), "typeI_x8")


def test_unknown_model_is_a_magsr_error(tf_modules):
    _, magsr_tf = tf_modules
    with pytest.raises(magsr_tf.MagsrError, match="no model folder"):
        magsr_tf.super_resolve(_lr(), "no_such_model")


def test_refine_through_the_api(tf_modules):
    _, magsr_tf = tf_modules
    lr = _lr((6, 6, 3))
    sr, record = magsr_tf.refine(lr, ratio=4, hamiltonian="typeII", steps=3)
    assert sr.shape == (24, 24, 3)
    np.testing.assert_allclose(np.linalg.norm(sr, axis=-1), 1.0, atol=1e-5)
    assert record["hamiltonian"]["kind"] == "typeII" and record["ratio"] == 4
    with pytest.raises(magsr_tf.MagsrError, match="ratio"):
        magsr_tf.refine(lr, hamiltonian="typeII", steps=1)
    with pytest.raises(magsr_tf.MagsrError, match="another ratio|x8 model"):
        magsr_tf.refine(lr, ratio=4, init="typeI_x8", steps=1)


def test_every_shipped_model_loads_through_the_api(tf_modules):
    _, magsr_tf = tf_modules
    folders = sorted(Path(p).parent for p in glob.glob(str(ROOT / "saved_models/*/model.keras")))
    assert len(folders) >= 5
    for folder in folders:
        assert magsr_tf.load_model(folder).output_shape[-1] == 3


def test_local_predictor_checks_what_tensorflow_would_abort_on(tf_modules):
    _, magsr_tf = tf_modules
    from magsr_tf.inference.predictor import LocalPredictor

    predictor = LocalPredictor(ROOT / "saved_models/typeI_x8")
    lr = _lr((8, 8, 3))
    assert predictor(lr).shape == (64, 64, 3)
    np.testing.assert_allclose(predictor(lr[None])[0], predictor(lr), atol=1e-6)
    for bad in (np.full((8, 8, 3), np.nan, np.float32), np.zeros((8, 8, 2), np.float32)):
        with pytest.raises(magsr_tf.MagsrError):
            predictor(bad)
