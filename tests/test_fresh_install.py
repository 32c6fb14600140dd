"""What a plain `pip install -e .` user meets: no optional import on the main path,
models.config without TF Serving's package, predict's input check, the quick dataset's name."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import call_main, run_cli

from magsr_tf import MagsrError
from magsr_tf.inference.models_config import models_config_text, write_models_config
from magsr_tf.io.inputs import VECTOR_LENGTH_TOLERANCE, load_inputs
from magsr_tf.jobs.fit import FitConfig, ensure_dataset

SEED = 7
# Folder names that exercise every escaping rule of protobuf's text format.
ODD_NAMES = ["typeI_x8", 'quo"te', "back\\slash", "tab\tnew\nline", "ünï_模型", "ctl\x01\x7f"]


def _fake_models_root(root: Path, names) -> Path:
    for name in names:
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "saved_model.pb").write_bytes(b"")
    return root


def test_models_config_is_what_tf_serving_proto_prints(tmp_path):
    text_format = pytest.importorskip("google.protobuf.text_format")
    pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    root = _fake_models_root(tmp_path, ODD_NAMES)
    for base_path in ("/models", None):
        text = models_config_text(root, base_path)
        parsed = text_format.Parse(text, pb2.ModelServerConfig())
        assert [c.name for c in parsed.model_config_list.config] == sorted(ODD_NAMES)
        assert text == text_format.MessageToString(parsed)
    assert models_config_text(tmp_path / "missing") == ""


# Runs in a fresh interpreter where the optional packages cannot be imported, as
# after a plain `pip install -e .`: the main path's modules and models.config work.
_WITHOUT_OPTIONAL = textwrap.dedent(
    """
    import importlib, sys
    BLOCKED = ("tensorflow_serving", "ai_edge_litert")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Block())
    for module in ("magsr_tf_cli.main", "magsr_tf.jobs.fit", "magsr_tf.training.train",
                   "magsr_tf.evaluation.evaluate", "magsr_tf.inference.export",
                   "magsr_tf.data.generation", "magsr_tf.jobs.predict",
                   "magsr_tf.serving.launcher"):
        importlib.import_module(module)
    from magsr_tf.inference.models_config import write_models_config
    print(write_models_config(sys.argv[1]).read_text(), end="")
    assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
    """
)


def test_main_path_needs_no_optional_package(tmp_path):
    root = _fake_models_root(tmp_path / "saved_models", ["typeI_x8"])
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OPTIONAL, str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == (
        'model_config_list {\n  config {\n    name: "typeI_x8"\n'
        '    base_path: "/models/typeI_x8"\n    model_platform: "tensorflow"\n  }\n}\n'
    )
    assert (root / "models.config").read_text() == proc.stdout
    assert write_models_config(root).read_text() == proc.stdout  # same in this process


def _unit_lr(shape=(2, 6, 5, 3)):
    x = np.random.default_rng(SEED).normal(size=shape)
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return (0.9 * x).astype(np.float32)  # LR vectors: averages of unit spins, shorter than 1


def test_predict_rejects_lr_vectors_longer_than_one(tmp_path):
    lr = _unit_lr()
    lr[1, 3, 2] = [0.0, 0.6, 0.8 + 2 * VECTOR_LENGTH_TOLERANCE]
    np.save(tmp_path / "long.npy", lr)
    with pytest.raises(MagsrError, match=r"no longer than 1.*map 1, pixel y=3, x=2"):
        load_inputs([str(tmp_path / "long.npy")])
    lr[1, 3, 2] = [0.0, 0.6, 0.8 + VECTOR_LENGTH_TOLERANCE / 2]  # rounding-size excess: accepted
    np.save(tmp_path / "ok.npy", lr)
    (batch,) = load_inputs([str(tmp_path / "ok.npy")])
    np.testing.assert_array_equal(batch.lr, lr)
    one_component = np.full((4, 4, 1), -1.5, np.float32)  # m_z beyond -1
    np.save(tmp_path / "mz.npy", one_component)
    with pytest.raises(MagsrError, match="no longer than 1"):
        load_inputs([str(tmp_path / "mz.npy")])


def test_predict_cli_long_vectors_is_one_error_line(tmp_path, monkeypatch, capsys):
    lr = _unit_lr()
    lr[0, 0, 0] = [1.0, 1.0, 0.0]
    np.save(tmp_path / "long.npy", lr)
    monkeypatch.delenv("MAGSR_DEBUG", raising=False)
    code, captured = call_main(monkeypatch, capsys, "predict", "any_model", tmp_path / "long.npy")
    err = captured.err
    assert code == 1
    assert err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert "|m| = 1.414" in err


def test_quick_dataset_never_takes_the_paper_size_path(tmp_path):
    from magsr_tf.data.generation import GenerateConfig

    for kind in ("typeI", "typeII"):
        config = FitConfig(data=kind)
        assert config.data_path == Path("data") / f"{kind}_quick.h5"
        assert config.data_path != GenerateConfig(kind=kind).out  # where `generate KIND` writes
        # The quick model never takes a shipped model's folder (saved_models/KIND_xR).
        assert config.name == f"{kind}_quick_x8"
    assert FitConfig(data="data/typeI.h5").data_path == Path("data/typeI.h5")
    assert FitConfig(data="data/typeI.h5").name == "typeI_x8"


def test_fit_reports_its_dataset_first(tmp_path):
    events = []
    path = tmp_path / "typeI_quick.h5"
    path.write_bytes(b"")  # present: nothing is generated
    assert ensure_dataset(FitConfig(data="typeI", data_dir=tmp_path), events.append) == path
    assert events == [{"kind": "dataset", "path": str(path), "exists": True, "quick": True}]


def test_fit_cli_first_line_names_the_dataset(tmp_path):
    proc = run_cli("fit", "elsewhere.h5", "--ratio", "4", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == "Dataset: elsewhere.h5"
    assert proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
