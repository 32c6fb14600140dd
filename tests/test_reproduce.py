"""`magsr-tf reproduce` on a tiny recipe: every step, an interruption and the rerun; and
the training phase reads no HR (the network is trained on LR images only)."""

from __future__ import annotations

import json
import os

import h5py
import pytest

pytest.importorskip("tensorflow")

from magsr_tf import MagsrError  # noqa: E402
from magsr_tf.data.generation import GenerateConfig, generate  # noqa: E402
from magsr_tf.jobs import reproduce as rep  # noqa: E402

SEED = 31
LATTICE = 16
TINY_DATASETS = {
    "typeI": {
        "kind": "typeI",
        "n": 10,
        "n_test": 3,
        "phases": 2,
        "lattice": LATTICE,
        "seed": SEED,
        "workers": 1,
    },
}
TINY_MODELS = (
    rep.ModelRecipe("typeI_x4", "typeI", 4),
    rep.ModelRecipe("typeI_x8", "typeI", 8),
)
TINY_FIT = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "refine_steps": 0}
TINY_EVALUATE = {"refine_steps": 0, "physical": False}


@pytest.fixture
def tiny_recipe(monkeypatch):
    monkeypatch.setattr(rep, "DATASETS", TINY_DATASETS)
    monkeypatch.setattr(rep, "MODELS", TINY_MODELS)
    monkeypatch.setattr(rep, "FIT_OPTIONS", TINY_FIT)
    monkeypatch.setattr(rep, "EVALUATE_OPTIONS", TINY_EVALUATE)


def _counting(monkeypatch, module, name, calls, fail_when=None):
    """Replace ``module.name`` by a wrapper that records its calls (and may fail)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args[0])
        if fail_when is not None and fail_when(args[0]):
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the run
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


@pytest.mark.slow
def test_reproduce_runs_every_step_and_continues_after_an_interruption(
    tiny_recipe, monkeypatch, tmp_path
):
    import magsr_tf.data.generation
    import magsr_tf.evaluation.evaluate
    import magsr_tf.inference.export
    import magsr_tf.jobs.fit

    config = rep.ReproduceConfig(out=tmp_path / "models", data_dir=tmp_path / "data")
    names = [s.name for s in rep.plan(config)]
    assert names == [
        "generate:typeI",
        "fit:typeI_x4",
        "tflite:typeI_x4",
        "evaluate:typeI_x4",
        "fit:typeI_x8",
        "tflite:typeI_x8",
        "evaluate:typeI_x8",
        "models_config",
        "report",
    ]

    # First run: interrupted when the second model's training starts.
    fits: list = []
    _counting(monkeypatch, magsr_tf.jobs.fit, "fit", fits, lambda c: c.ratio == 8)
    events: list[dict] = []
    with pytest.raises(KeyboardInterrupt):
        rep.reproduce(config, progress=events.append)
    state = rep.read_state(config.out)
    steps = state["steps"]
    assert [k for k, v in steps.items() if v["status"] == "done"] == names[:4]
    assert steps["fit:typeI_x8"]["status"] == "interrupted"
    assert all(steps[n]["seconds"] > 0 for n in names[:4])
    assert any(e["kind"] == "work" and e["step"] == "fit:typeI_x4" for e in events)
    assert (config.out / "typeI_x4" / "typeI_x4.tflite").stat().st_size > 0
    first_times = {n: steps[n]["seconds"] for n in names[:4]}

    # Rerun: the finished steps are skipped (their times kept), the rest runs once.
    monkeypatch.undo()
    monkeypatch.setattr(rep, "DATASETS", TINY_DATASETS)
    monkeypatch.setattr(rep, "MODELS", TINY_MODELS)
    monkeypatch.setattr(rep, "FIT_OPTIONS", TINY_FIT)
    monkeypatch.setattr(rep, "EVALUATE_OPTIONS", TINY_EVALUATE)
    generated, fits, tflites, evaluations = [], [], [], []
    _counting(monkeypatch, magsr_tf.data.generation, "generate", generated)
    _counting(monkeypatch, magsr_tf.jobs.fit, "fit", fits)
    _counting(monkeypatch, magsr_tf.inference.export, "export_tflite", tflites)
    _counting(monkeypatch, magsr_tf.evaluation.evaluate, "evaluate", evaluations)
    events = []
    state = rep.reproduce(config, progress=events.append)
    assert generated == []
    assert [c.ratio for c in fits] == [8]
    assert [p.parent.name for p in tflites] == ["typeI_x8"]
    assert [c.model.name for c in evaluations] == ["typeI_x8"]
    skipped = [e["step"] for e in events if e["kind"] == "step_skip"]
    assert skipped == names[:4]
    steps = state["steps"]
    assert all(steps[n]["status"] == "done" for n in names)
    assert {n: steps[n]["seconds"] for n in names[:4]} == first_times
    assert all(steps[n]["skipped_last_run"] for n in names[:4])

    # The outputs of the recipe: both models complete, served, and in Tables 1-2.
    for name, ratio in (("typeI_x4", 4), ("typeI_x8", 8)):
        folder = config.out / name
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["ratio"] == ratio and summary["physics_weight"] > 0
        assert (folder / "1" / "saved_model.pb").is_file()
        assert (folder / f"evaluation_typeI_x{ratio}.json").is_file()
    models_config = (config.out / "models.config").read_text()
    assert models_config.count("config {") == 2
    tables = (config.out / rep.TABLES_FILE).read_text()
    assert "Table 1: Type I" in tables and "| x8 | SR network |" in tables

    # A third run redoes nothing but the two cheap bookkeeping steps.
    fits.clear()
    events = []
    rep.reproduce(config, progress=events.append)
    assert fits == []
    assert [e["step"] for e in events if e["kind"] == "step_start"] == names[-2:]
    ledger = json.loads((config.out / rep.STATE_FILE).read_text())
    assert ledger["recipe"]["fit"] == TINY_FIT
    assert "git_commit" in ledger

    # Outputs are tied to the model they were made from by its fingerprint, not by
    # mtimes (a clone's checkout order sets those): an older-looking TFLite file is
    # kept, an evaluation recorded for another model.keras is redone.
    keras = config.out / "typeI_x4" / "model.keras"
    assert ledger["steps"]["tflite:typeI_x4"]["source"] == rep.fingerprint(keras)
    stamp = keras.stat().st_mtime
    os.utime(config.out / "typeI_x4" / "typeI_x4.tflite", (stamp - 60, stamp - 60))
    ledger["steps"]["evaluate:typeI_x4"]["source"] = "0" * 64
    (config.out / rep.STATE_FILE).write_text(json.dumps(ledger))
    events = []
    rep.reproduce(config, progress=events.append)
    started = [e["step"] for e in events if e["kind"] == "step_start"]
    assert started == ["evaluate:typeI_x4", *names[-2:]]

    # Without its dataset (a fresh clone of finished models) nothing is regenerated
    # while every step reading it is complete.
    generated.clear()
    (tmp_path / "data" / "typeI_reproduce.h5").unlink()
    events = []
    state = rep.reproduce(config, progress=events.append)
    assert generated == []
    (skip,) = [e for e in events if e.get("step") == "generate:typeI"]
    assert skip["kind"] == "step_skip" and skip["reason"] == "not needed"
    assert state["steps"]["generate:typeI"]["status"] == "not needed"


def test_unknown_model_names_are_refused(tmp_path):
    with pytest.raises(MagsrError, match="typeIII_x4"):
        rep.ReproduceConfig(out=tmp_path, only=("typeI_x4", "typeIII_x4"))
    config = rep.ReproduceConfig(out=tmp_path, only=("typeII_x16",))
    assert [m.name for m in config.models] == ["typeII_x16"]
    assert [s.name for s in rep.plan(config)][:2] == ["generate:typeII", "fit:typeII_x16"]


def test_the_shipped_recipe_is_what_fit_typei_generates():
    from magsr_tf.jobs import fit

    typei = rep.DATASETS["typeI"]
    assert typei["n"] == fit.QUICK_N_TRAIN + fit.QUICK_N_TEST
    assert typei["n_test"] == fit.QUICK_N_TEST and typei["phases"] == fit.QUICK_PHASES
    assert [m.name for m in rep.MODELS] == [
        "typeI_x4",
        "typeI_x8",
        "typeII_x4",
        "typeII_x8",
        "typeII_x16",
    ]
    # `fit KIND` never picks a shipped name for its own output.
    for kind in fit.KINDS:
        for ratio in (4, 8, 16):
            assert fit.FitConfig(data=kind, ratio=ratio).name not in {m.name for m in rep.MODELS}


def test_the_committed_models_are_the_recipe_and_count_as_trained():
    # In a clone, `magsr-tf reproduce` must find every shipped model complete
    # (no retraining), and the recipe must be the one the models were trained with.
    from pathlib import Path

    from magsr_tf.jobs.fit import FitConfig

    for model in rep.MODELS:
        folder = Path(__file__).resolve().parents[1] / rep.MODELS_DIR / model.name
        trained = json.loads((folder / "train_config.json").read_text())
        options = rep.fit_options(model)
        assert trained["epochs"] == options["epochs"], model.name
        assert trained["model"]["ratio"] == model.ratio
        assert Path(trained["data"]).name == f"{model.dataset}_reproduce.h5"
        defaults = FitConfig(data=model.dataset, ratio=model.ratio, **options)
        assert trained["learning_rate"] == defaults.learning_rate
        assert trained["seed"] == defaults.seed
        assert rep._fit_complete(folder, options["epochs"]), model.name


def test_a_corrupt_ledger_is_ignored(tmp_path):
    (tmp_path / rep.STATE_FILE).write_text("{not json")
    assert rep.read_state(tmp_path)["steps"] == {}


# --------------------------------------------------------------------------- LR only


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("lr_only") / "tiny.h5"
    generate(
        GenerateConfig(
            kind="typeI", n=8, n_test=2, lattice=LATTICE, seed=SEED, out=path, phases=2, workers=1
        )
    )
    return path


def test_training_reads_no_hr(tiny_dataset, monkeypatch, tmp_path):
    """Any access to the 'hr' dataset while train_h5 runs fails the test."""
    from magsr_tf.nn.model import ModelConfig
    from magsr_tf.physics.hamiltonian_io import dataset_hamiltonian, hamiltonian_to_json
    from magsr_tf.training.config import TrainConfig
    from magsr_tf.training.train import train_h5

    ham = hamiltonian_to_json(dataset_hamiltonian(tiny_dataset))
    seen: list[str] = []
    original = h5py.Group.__getitem__

    def guarded(self, name):
        key = name.decode() if isinstance(name, bytes) else str(name)
        seen.append(key)
        if key.strip("/").split("/")[-1] == "hr":
            raise AssertionError(f"read HR ({key}) during training")
        return original(self, name)

    monkeypatch.setattr(h5py.Group, "__getitem__", guarded)
    # The guard works: a direct read of HR is caught.
    with h5py.File(tiny_dataset, "r") as f, pytest.raises(AssertionError, match="read HR"):
        f["hr"]
    seen.clear()
    config = TrainConfig(
        model=ModelConfig(ratio=4, channels=3),
        epochs=1,
        steps_per_epoch=2,
        batch_size=4,
        seed=SEED,
        out_dir=tmp_path / "train",
        physics_weight=0.03,  # the energy prior needs the Hamiltonian, never HR
        hamiltonian=ham,
        recalibrate_bn_batches=1,
    )
    result = train_h5(tiny_dataset, config, stop=6)
    assert len(result.history) == 1
    # The guard saw the training reads: LR rows, nothing else of the file.
    assert any(k.strip("/").startswith("lr") for k in seen)
    assert not any("hr" in k.strip("/").split("/") for k in seen)


# --------------------------------------------------------------------------- bench models


def test_bench_models_times_saved_model_and_tflite_against_keras(tmp_path):
    from magsr_tf.benchmarks.inference import bench_models, model_folders
    from magsr_tf.inference.export import export_saved_model, export_tflite
    from magsr_tf.nn.model import ModelConfig, build_models

    root = tmp_path / "saved_models"
    for name in ("typeII_x16", "mine_x16"):  # a shipped name and a user's model
        sr_model, _ = build_models(ModelConfig(ratio=16, channels=3))
        (root / name).mkdir(parents=True)
        sr_model.save(root / name / "model.keras")
        export_saved_model(sr_model, root / name)
    export_tflite(root / "typeII_x16", root / "typeII_x16" / "typeII_x16.tflite")
    # Only the shipped models are timed when there are some.
    assert [p.name for p in model_folders(root)] == ["typeII_x16"]
    seen = []
    (row,) = bench_models(root, batch=2, seconds=0.05, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1, 1)
    assert row["model"] == "typeII_x16" and row["LR size"] == "8x8"
    for key in ("Keras img/s", "SavedModel img/s", "TFLite img/s"):
        assert row[key] > 0
    assert row["TFLite / Keras"] == pytest.approx(row["TFLite img/s"] / row["Keras img/s"])
    # Without shipped models, every served model is timed (here without a TFLite file).
    (root / "typeII_x16" / "1" / "saved_model.pb").unlink()
    (row,) = bench_models(root, batch=1, seconds=0.05)
    assert row["model"] == "mine_x16" and row["TFLite img/s"] is None
    with pytest.raises(MagsrError, match="no models folder"):
        bench_models(tmp_path / "nowhere")
