"""Issue 25: fit, evaluate and export never lose a user's files; failures are one line.

Each test here failed on the code before the fix: fit replaced any model
folder (committed or another run's), rewrote ``models.config`` from scratch,
evaluate overwrote the committed JSON and figure, report --tables printed a
1-image run as Table 1, export rewrote the TFLite file, and Ctrl-C, an empty
``.npy``, a ``MemoryError`` or a bad HTTP reply were silent, ``Aborted.`` or an
"unexpected" error.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import (
    assert_one_line_error,
    call_main,
    file_digest,
    run_cli,
    start_cli,
    tiny_typeI_dataset,
    unit_maps,
)

from magsr_tf import MagsrError
from magsr_tf.inference.models_config import merge_models_config, parse_models_config

SEED = 2525
FIT = ["--ratio", "4", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4"]
FIT += ["--refine-steps", "0"]

HAND_WRITTEN = """# written by hand: keep me
model_config_list {
  config {
    name: "mine"
    base_path: "/models/mine"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 2 versions: 3 } }
  }
}
"""


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return tiny_typeI_dataset(path, n=6, n_test=2, seed=SEED)


@pytest.fixture(scope="module")
def fitted(tiny_dataset, tmp_path_factory):
    """A models root with a hand-written models.config and one model fitted under 027."""
    root = tmp_path_factory.mktemp("saved_models")
    (root / "models.config").write_text(HAND_WRITTEN)
    proc = _cli("fit", tiny_dataset, *FIT, "--out", root / "m", umask=0o027)
    assert proc.returncode == 0, proc.stderr
    return root


def _cli(*args, umask: int) -> subprocess.CompletedProcess:
    """``magsr-tf ARGS`` in a subprocess under ``umask``."""
    return subprocess.run(
        [sys.executable, "-m", "magsr_tf_cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=lambda: os.umask(umask),
    )


def _tree(folder):
    return {p.relative_to(folder): file_digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_fit_continues_its_own_run_and_refuses_another(fitted, tiny_dataset):
    model = fitted / "m"
    again = _cli("fit", tiny_dataset, *FIT, "--out", model, umask=0o027)  # the same run: resumes
    assert again.returncode == 0, again.stderr
    before = _tree(model)
    other = run_cli(
        "fit", tiny_dataset, *FIT[:-2], "--refine-steps", "0", "--seed", "7", "--out", model
    )
    assert_one_line_error(other, "holds another run's model")
    assert _tree(model) == before


def test_fit_overwrite_removes_the_other_runs_stale_files(fitted, tiny_dataset, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    for name in ("model.keras", "m.tflite", "evaluation_typeI_x8.json"):
        (model / name).write_text("old")
    refused = run_cli("fit", tiny_dataset, *FIT, "--out", model)
    assert_one_line_error(refused, "--overwrite")
    proc = run_cli("fit", tiny_dataset, *FIT, "--out", model, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (model / "m.tflite").exists() and not (model / "evaluation_typeI_x8.json").exists()
    assert (model / "1" / "saved_model.pb").is_file()


def test_fit_refuses_a_folder_with_committed_files(tiny_dataset, tmp_path):
    model = tmp_path / "repo" / "typeI_x8"
    model.mkdir(parents=True)
    (model / "train_config.json").write_text("{}")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path / "repo")]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "shipped"], check=True)
    proc = run_cli("fit", tiny_dataset, *FIT, "--out", model)
    assert_one_line_error(proc, "committed file")
    assert sorted(p.name for p in model.iterdir()) == ["train_config.json"]


def test_fit_keeps_hand_written_models_config_entries(fitted):
    text = (fitted / "models.config").read_text()
    assert text.startswith(HAND_WRITTEN.rsplit("}", 1)[0])  # the hand-written part, verbatim
    _, entries, _ = parse_models_config(text)
    assert [name for name, _ in entries] == ["mine", "m"]
    assert "versions: 3" in dict(entries)["mine"]


def test_merge_models_config_replaces_only_the_named_models(tmp_path):
    for name in ("a", "mine"):
        (tmp_path / name / "1").mkdir(parents=True)
        (tmp_path / name / "1" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "models.config").write_text(HAND_WRITTEN)
    merge_models_config(tmp_path, ["a"])
    merge_models_config(tmp_path, ["a"])  # idempotent
    text = (tmp_path / "models.config").read_text()
    assert text.count('name: "a"') == 1 and "versions: 2 versions: 3" in text
    pb = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    from google.protobuf import text_format

    parsed = text_format.Parse(text, pb.ModelServerConfig())
    assert [c.name for c in parsed.model_config_list.config] == ["mine", "a"]
    (tmp_path / "models.config").write_text("model_config_list { config { name: ")
    with pytest.raises(MagsrError, match="models.config"):
        merge_models_config(tmp_path, ["a"])


def test_files_follow_the_umask(fitted):
    model = fitted / "m"
    for path in [model, *model.rglob("*")]:
        if "train" in path.relative_to(fitted).parts:
            continue  # Keras checkpoints and TensorBoard logs: out of scope
        want = 0o750 if path.is_dir() else 0o640
        assert path.stat().st_mode & 0o777 == want, path
    assert (fitted / "models.config").stat().st_mode & 0o777 in (0o640, 0o644)


def test_evaluate_refuses_to_overwrite_and_report_marks_partial_runs(fitted, tiny_dataset):
    from magsr_tf.evaluation.report import paper_tables

    model = fitted / "m"
    first = _cli("evaluate", model, "--data", tiny_dataset, "--refine-steps", "0", umask=0o022)
    assert first.returncode == 0, first.stderr
    json_path = model / "evaluation_typeI_x4.json"
    figure = model / "figures" / "evaluate_typeI_x4.png"
    assert json_path.stat().st_mode & 0o777 == 0o644 and figure.stat().st_mode & 0o777 == 0o644
    digests = file_digest(json_path), file_digest(figure)
    args = ["evaluate", model, "--data", tiny_dataset, "--images", "1", "--refine-steps", "0"]
    assert_one_line_error(run_cli(*args), "--overwrite")
    assert (file_digest(json_path), file_digest(figure)) == digests
    lines, _ = paper_tables(fitted, ("m",))
    assert "(partial)" not in "\n".join(lines)
    assert run_cli(*args, "--overwrite").returncode == 0
    result = json.loads(json_path.read_text())
    assert (result["n_images"], result["n_test"]) == (1, 2)
    text = "\n".join(paper_tables(fitted, ("m",))[0])
    assert "| x4 (partial) |" in text and "partial run**: 1 of its 2" in text


def test_export_keeps_or_refuses_an_existing_tflite(fitted):
    model = fitted / "m"
    tflite = model / "m.tflite"
    tflite.write_bytes(b"user's file")
    kept = run_cli("export", model, "--root", fitted)
    assert kept.returncode == 0, kept.stderr
    assert "TFLite (kept" in kept.stdout and tflite.read_bytes() == b"user's file"
    refused = run_cli("export", model, "--root", fitted, "--version", "2")
    assert_one_line_error(refused, "m.tflite already exists")
    assert not (model / "2").exists() and tflite.read_bytes() == b"user's file"
    assert "versions: 3" in (fitted / "models.config").read_text()


def _interrupt(tmp_path, signum):
    np.save(tmp_path / "lr.npy", 0.9 * unit_maps((16, 16, 3), SEED))
    proc = start_cli(
        [
            "refine",
            "lr.npy",
            "--ratio",
            "4",
            "--hamiltonian",
            "typeI",
            "--steps",
            "1000000",
            "--out",
            "out",
        ],
        cwd=tmp_path,
    )
    seen = []
    for line in proc.stderr:  # wait until it is working (progress lines)
        seen.append(line)
        if "step" in line:
            break
    proc.send_signal(signum)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    return proc.returncode, rest.strip().splitlines(), seen


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_is_one_line(tmp_path, signum):
    code, lines, seen = _interrupt(tmp_path, signum)
    assert code == 128 + signum, (lines, seen)
    assert lines[-1] == f"Interrupted ({signal.Signals(signum).name}).", lines
    assert not any("Traceback" in line for line in lines)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_empty_npy_and_out_that_is_a_file(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    proc = run_cli("refine", "empty.npy", "--ratio", "4", "--hamiltonian", "typeI", cwd=tmp_path)
    assert "Aborted" not in proc.stderr
    assert_one_line_error(proc, "Error")
    np.save(tmp_path / "lr.npy", 0.9 * unit_maps((8, 8, 3), SEED))
    (tmp_path / "taken").write_text("mine")
    for command in (
        ["refine", "lr.npy", "--ratio", "4", "--hamiltonian", "typeI"],
        ["predict", "typeI_x8", "lr.npy"],
    ):
        proc = run_cli(*command, "--out", "taken", cwd=tmp_path)
        assert_one_line_error(proc, "taken is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize(
    "exc, fragment",
    [
        (MemoryError("Unable to allocate 112. GiB"), "out of memory (Unable to allocate 112. GiB)"),
        (http.client.BadStatusLine("\x1b[31mred"), "not valid HTTP"),
        (EOFError("No data left in file"), "ended early"),
        ("bomb", "picture too large"),
    ],
)
def test_resource_errors_are_one_line_without_the_debug_hint(
    monkeypatch, capsys, tmp_path, exc, fragment
):
    import magsr_tf.jobs.refine as refine_job

    if exc == "bomb":
        from PIL import Image

        exc = Image.DecompressionBombError("Image size (10**8 pixels) exceeds limit")

    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(refine_job, "run_refine", boom)
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "lr.npy", 0.9 * unit_maps((8, 8, 3), SEED))
    code, captured = call_main(
        monkeypatch, capsys, "refine", "lr.npy", "--ratio", "4", "--hamiltonian", "typeI"
    )
    lines = captured.err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and fragment in lines[0], captured.err
    assert "--debug" not in captured.err and "\x1b" not in captured.err
