"""Deployment artifacts: SavedModel signature, TF Serving config, TFLite parity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli, unit_maps

tf = pytest.importorskip("tensorflow")

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.inference.export import (  # noqa: E402
    export_saved_model,
    export_tflite,
    latest_saved_model,
    read_metadata,
)
from magsr_tf.inference.models_config import write_models_config  # noqa: E402
from magsr_tf.jobs.export import ExportConfig, export_model  # noqa: E402
from magsr_tf.nn.model import ModelConfig, build_models  # noqa: E402

SEED = 20231
RATIO = 4
CHANNELS = 3


def make_sr_model(ratio=RATIO, channels=CHANNELS, padding="periodic", seed=SEED):
    """An SR model with non-trivial BatchNorm statistics (as after training)."""
    sr_model, _ = build_models(ModelConfig(ratio=ratio, channels=channels, padding=padding))
    rng = np.random.default_rng(seed)
    for layer in sr_model.layers:
        if layer.name.endswith("_bn"):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                    rng.normal(0, 0.1, beta.shape).astype("float32"),
                    rng.normal(0, 0.1, mean.shape).astype("float32"),
                    rng.uniform(0.5, 2.0, var.shape).astype("float32"),
                ]
            )
    return sr_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    sr_model = make_sr_model()
    model_dir = root / "demo_x4"
    model_dir.mkdir()
    sr_model.save(model_dir / "model.keras")
    version_dir = export_saved_model(sr_model, model_dir, version=1)
    return sr_model, root, model_dir, version_dir


def test_signature_read_back_from_disk(exported):
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.saved_model import loader_impl

    _, _, _, version_dir = exported
    saved = loader_impl.parse_saved_model(str(version_dir))
    (meta_graph,) = saved.meta_graphs
    assert "serve" in meta_graph.meta_info_def.tags
    sig = meta_graph.signature_def["serving_default"]
    assert list(sig.inputs) == ["lr"] and list(sig.outputs) == ["sr"]
    lr, sr = sig.inputs["lr"], sig.outputs["sr"]
    assert lr.dtype == types_pb2.DT_FLOAT and sr.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in lr.tensor_shape.dim] == [-1, -1, -1, CHANNELS]
    assert [d.size for d in sr.tensor_shape.dim] == [-1, -1, -1, CHANNELS]
    info = read_metadata(version_dir)
    assert info["ratio"] == RATIO and info["channels"] == CHANNELS


def test_loaded_saved_model_equals_keras(exported):
    sr_model, _, _, version_dir = exported
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    for shape in [(1, 8, 8, CHANNELS), (3, 6, 10, CHANNELS)]:  # dynamic batch and size
        x = unit_maps(shape, SEED)
        got = serve(lr=tf.constant(x))["sr"].numpy()
        assert got.shape == (shape[0], shape[1] * RATIO, shape[2] * RATIO, CHANNELS)
        np.testing.assert_allclose(got, sr_model(x, training=False).numpy(), atol=1e-6)


def test_saved_model_cli_run(exported, tmp_path):
    sr_model, _, _, version_dir = exported
    x = unit_maps((2, 6, 7, CHANNELS), SEED)
    np.save(tmp_path / "lr.npy", x)
    exe = shutil.which("saved_model_cli")
    cmd = [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    out = tmp_path / "out"
    proc = subprocess.run(
        cmd
        + [
            "run",
            "--dir",
            str(version_dir),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"lr={tmp_path / 'lr.npy'}",
            "--outdir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(out / "sr.npy"), sr_model(x).numpy(), atol=1e-6)


def test_tflite_matches_saved_model(exported, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    _, _, model_dir, version_dir = exported
    path = export_tflite(model_dir, tmp_path / "demo.tflite")
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    interpreter = Interpreter(model_path=str(path))
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape_signature"]) == [-1, -1, -1, CHANNELS]
    for shape in [(1, 8, 8, CHANNELS), (2, 5, 9, CHANNELS)]:
        x = unit_maps(shape, SEED)
        interpreter.resize_tensor_input(inp["index"], shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        want = serve(lr=tf.constant(x))["sr"].numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_models_config_parses_with_tf_serving_proto(exported, tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    _, root, _, _ = exported
    (root / "not_a_model").mkdir(exist_ok=True)  # no SavedModel: must not be listed
    expected = [("/models", "/models/demo_x4"), (None, str((root / "demo_x4").resolve()))]
    for base_path, expect in expected:
        path = write_models_config(root, base_path=base_path)
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
        entries = list(config.model_config_list.config)
        assert [e.name for e in entries] == ["demo_x4"]
        assert entries[0].model_platform == "tensorflow"
        assert entries[0].base_path == expect
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]


def test_version_is_never_overwritten_silently(tmp_path):
    sr_model = make_sr_model()
    v1 = export_saved_model(sr_model, tmp_path / "m", version=1)
    stamp = (v1 / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(MagsrError, match="already exists"):
        export_saved_model(sr_model, tmp_path / "m", version=1)
    assert (v1 / "saved_model.pb").stat().st_mtime_ns == stamp
    export_saved_model(sr_model, tmp_path / "m", version=2)
    assert latest_saved_model(tmp_path / "m").name == "2"
    export_saved_model(sr_model, tmp_path / "m", version=1, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no temp left
    with pytest.raises(MagsrError, match="version"):
        export_saved_model(sr_model, tmp_path / "m", version=0)


def test_export_model_and_missing_saved_model(tmp_path):
    root = tmp_path / "saved_models"
    model_dir = root / "one_channel"
    model_dir.mkdir(parents=True)
    make_sr_model(channels=1, padding="reflect").save(model_dir / "model.keras")
    with pytest.raises(MagsrError, match="no SavedModel"):
        latest_saved_model(model_dir)
    result = export_model(ExportConfig(model="one_channel", fmt="all", models_root=root))
    assert result.saved_model == model_dir / "1" and result.saved_model_written
    assert result.tflite == model_dir / "one_channel.tflite" and result.tflite.is_file()
    assert result.info["channels"] == 1 and result.info["padding"] == "reflect"
    assert "one_channel" in (root / "models.config").read_text()
    again = export_model(ExportConfig(model=str(model_dir), fmt="saved_model", models_root=root))
    assert not again.saved_model_written  # the existing version is kept
    with pytest.raises(MagsrError, match="already exists"):
        export_model(ExportConfig(model=str(model_dir), version=1, models_root=root))


def test_cli_bad_model_folder_is_one_line_error(tmp_path):
    (tmp_path / "empty").mkdir()
    for target in [tmp_path / "empty", tmp_path / "missing"]:
        proc = run_cli("export", target, cwd=tmp_path)
        assert proc.returncode == 1
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("Error:")
