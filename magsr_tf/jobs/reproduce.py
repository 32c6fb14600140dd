"""``magsr-tf reproduce``: rebuild every shipped model from nothing, resumably.

The recipe (:data:`DATASETS`, :data:`MODELS`, :data:`FIT_OPTIONS`) is the one
the models in ``saved_models/`` were made with. :func:`reproduce` runs it as a
list of steps:

1. ``generate:KIND`` for each dataset the selected models need
   (:func:`magsr_tf.data.generation.generate`, itself resumable chunk by chunk);
2. for each model ``fit:NAME`` (:func:`magsr_tf.jobs.fit.fit`, resuming from the
   training checkpoints in ``OUT/NAME/train``), ``tflite:NAME``
   (:func:`magsr_tf.inference.export.export_tflite`) and ``evaluate:NAME``
   (:func:`magsr_tf.evaluation.evaluate.evaluate`, the Tables 1/2 JSON);
3. ``models_config`` (TF Serving's ``OUT/models.config``, listing the shipped
   models only) and ``report`` (``OUT/tables.md``, Tables 1-2).

A step is skipped when its output exists and is complete, so a rerun after an
interruption continues where it stopped. ``OUT/reproduce_state.json`` (the
ledger, written atomically after every step) records when each step finished
and how long it took; a skipped step keeps the time of the run that did it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magsr_tf import __version__
from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import write_json

logger = logging.getLogger(__name__)

Progress = Callable[[dict], None]

MODELS_DIR = Path("saved_models")
DATA_DIR = Path("data")
STATE_FILE = "reproduce_state.json"
STATE_VERSION = 1
TABLES_FILE = "tables.md"

DATASETS: dict[str, dict[str, Any]] = {
    # What `magsr-tf fit typeI` generates (magsr_tf.jobs.fit QUICK_*): 500 training
    # and 100 test configurations, 15 sub-pixel phases per LR image.
    "typeI": {"kind": "typeI", "n": 600, "n_test": 100, "phases": 15},
    # Type II anneals about 4x slower per configuration; 100 training states
    # with 15 phases each still give 1,600 distinct LR images per ratio.
    "typeII": {"kind": "typeII", "n": 150, "n_test": 50, "phases": 15},
}
""":class:`magsr_tf.data.generation.GenerateConfig` arguments per dataset (``out`` is added)."""


@dataclass(frozen=True)
class ModelRecipe:
    """One shipped model.

    Attributes:
        name: folder under the models root (``typeI_x4``); never a name that
            ``magsr-tf fit`` picks by itself (those end in ``_quick_xR``).
        dataset: key of :data:`DATASETS`.
        ratio: super-resolution ratio.
        epochs: training epochs; None: ``FIT_OPTIONS["epochs"]``.
    """

    name: str
    dataset: str
    ratio: int
    epochs: int | None = None


MODELS: tuple[ModelRecipe, ...] = (
    ModelRecipe("typeI_x4", "typeI", 4),
    # 6 epochs (900 steps): the README's quick run, `magsr-tf fit typeI --ratio 8`.
    ModelRecipe("typeI_x8", "typeI", 8, epochs=6),
    ModelRecipe("typeII_x4", "typeII", 4),
    ModelRecipe("typeII_x8", "typeII", 8),
    ModelRecipe("typeII_x16", "typeII", 16),
)

FIT_OPTIONS: dict[str, Any] = {"epochs": 8}
""":class:`magsr_tf.jobs.fit.FitConfig` arguments beyond data/ratio/out (defaults otherwise:
the energy prior is on, seed 0)."""


def fit_options(model: ModelRecipe) -> dict[str, Any]:
    """:class:`magsr_tf.jobs.fit.FitConfig` arguments of one model: FIT_OPTIONS and its epochs."""
    options = dict(FIT_OPTIONS)
    if model.epochs is not None:
        options["epochs"] = model.epochs
    return options


EVALUATE_OPTIONS: dict[str, Any] = {}
""":class:`magsr_tf.evaluation.evaluate.EvaluateConfig` arguments beyond model/data."""


@dataclass(frozen=True)
class ReproduceConfig:
    """``magsr-tf reproduce``.

    Attributes:
        out: models root; each model goes to ``out/NAME`` (default ``saved_models``).
        data_dir: where the datasets are generated (``data_dir/KIND_reproduce.h5``).
        only: model names to rebuild (None: all of :data:`MODELS`).
    """

    out: Path = MODELS_DIR
    data_dir: Path = DATA_DIR
    only: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.only is not None:
            known = [m.name for m in MODELS]
            unknown = [n for n in self.only if n not in known]
            if unknown or not self.only:
                raise MagsrError(
                    f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                    f"expected some of {', '.join(known)}. Received: only={','.join(self.only)}"
                )

    @property
    def models(self) -> tuple[ModelRecipe, ...]:
        if self.only is None:
            return MODELS
        return tuple(m for m in MODELS if m.name in self.only)

    def dataset_path(self, dataset: str) -> Path:
        return Path(self.data_dir) / f"{dataset}_reproduce.h5"


@dataclass
class Step:
    """One step of the plan.

    ``run(progress)`` does it; ``complete(record)`` says whether its output is
    there, given the step's ledger record; ``source()`` (optional) fingerprints
    the step's input, recorded in the ledger as ``"source"`` when it is done;
    a step with ``needed_by`` is skipped when all those steps are complete (a
    dataset that no unfinished step reads is not generated).
    """

    name: str
    run: Callable[[Progress | None], Any] = field(repr=False)
    complete: Callable[[dict], bool] = field(repr=False)
    source: Callable[[], str | None] | None = field(default=None, repr=False)
    needed_by: tuple[str, ...] = ()


# --------------------------------------------------------------------------- ledger


def read_state(out: Path) -> dict:
    """The ledger ``out/reproduce_state.json`` (an empty one if missing or unreadable)."""
    path = Path(out) / STATE_FILE
    try:
        state = json.loads(path.read_text())
        if isinstance(state, dict) and isinstance(state.get("steps"), dict):
            return state
        logger.warning("ignoring malformed %s", path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
    return {"version": STATE_VERSION, "steps": {}}


# --------------------------------------------------------------------------- completeness


def _dataset_complete(path: Path) -> bool:
    if not path.is_file():
        return False
    from magsr_tf.data.format import open_info

    try:
        open_info(path)  # raises on an unfinished or foreign file
    except MagsrError:
        return False
    return True


def _fit_complete(model_dir: Path, epochs: int | None) -> bool:
    summary_path = model_dir / "summary.json"
    if not (summary_path.is_file() and (model_dir / "model.keras").is_file()):
        return False
    if not (model_dir / "1" / "saved_model.pb").is_file():
        return False
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return False
    # A summary of a shorter run (e.g. the recipe grew) is not this step's output.
    return epochs is None or len(summary.get("history", [])) >= epochs


def fingerprint(path: Path) -> str | None:
    """SHA-256 of a file (None if missing): which ``model.keras`` an output was made from."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _made_from(path: Path, source: Path, record: dict) -> bool:
    """Whether ``path`` exists and was made from the current ``source``.

    The ledger's fingerprint of the source decides; without one (a folder made
    by hand, or by ``fit`` and ``evaluate`` directly) the output must be newer.
    A clone's checkout order sets mtimes arbitrarily, hence the fingerprint first.
    """
    if not (path.is_file() and source.is_file()):
        return False
    recorded = record.get("source")
    if recorded is not None:
        return record.get("status") == "done" and recorded == fingerprint(source)
    return path.stat().st_mtime >= source.stat().st_mtime


def tflite_path(model_dir: Path) -> Path:
    """Where the TFLite file of a model folder goes (as ``magsr-tf export`` names it)."""
    return model_dir / f"{model_dir.name}.tflite"


def evaluation_path(model_dir: Path, kind: str, ratio: int) -> Path:
    """The JSON that ``magsr-tf evaluate`` writes by default into the model folder."""
    return model_dir / f"evaluation_{kind}_x{ratio}.json"


# --------------------------------------------------------------------------- plan


def plan(config: ReproduceConfig) -> list[Step]:
    """The steps of ``config``, in order."""
    out = Path(config.out)
    models = config.models
    steps: list[Step] = []
    datasets = sorted({m.dataset for m in models}, key=list(DATASETS).index)
    model_steps = {m.name: _model_steps(config, m, out / m.name) for m in models}
    for dataset in datasets:
        users = [s.name for m in models if m.dataset == dataset for s in model_steps[m.name]]
        steps.append(_generate_step(config, dataset, tuple(users)))
    for model in models:
        steps += model_steps[model.name]
    steps.append(
        Step(
            "models_config",
            lambda progress: _write_models_config(out),
            lambda record: False,  # cheap, and other models may have come or gone: always rewrite
        )
    )
    steps.append(
        Step(
            "report",
            lambda progress: _write_tables(out),
            lambda record: False,
        )
    )
    return steps


def _generate_step(config: ReproduceConfig, dataset: str, needed_by: tuple[str, ...]) -> Step:
    path = config.dataset_path(dataset)

    def run(progress: Progress | None) -> Path:
        from magsr_tf.data.generation import GenerateConfig, generate

        def on_progress(done: int, total: int) -> None:
            if progress is not None:
                progress({"kind": "work", "done": done, "total": total, "unit": "conf"})

        return generate(GenerateConfig(**DATASETS[dataset], out=path), progress=on_progress)

    return Step(
        f"generate:{dataset}", run, lambda record: _dataset_complete(path), needed_by=needed_by
    )


def _model_steps(config: ReproduceConfig, model: ModelRecipe, model_dir: Path) -> list[Step]:
    data = config.dataset_path(model.dataset)
    kind = DATASETS[model.dataset]["kind"]
    options = fit_options(model)
    epochs = options.get("epochs")

    def fit_run(progress: Progress | None) -> dict:
        from magsr_tf.jobs.fit import FitConfig, fit

        def on_progress(event: dict) -> None:
            if progress is not None and event.get("kind") == "step":
                done = (event["epoch"] - 1) * event["steps"] + event["step"]
                total = event["epochs"] * event["steps"]
                progress({"kind": "work", "done": done, "total": total, "unit": "step"})

        fit_config = FitConfig(
            data=str(data), ratio=model.ratio, out=model_dir, overwrite=True, **options
        )
        return fit(fit_config, progress=on_progress)

    def tflite_run(progress: Progress | None) -> Path:
        from magsr_tf.inference.export import export_tflite

        return export_tflite(model_dir / "1", tflite_path(model_dir), overwrite=True)

    def evaluate_run(progress: Progress | None) -> dict:
        from magsr_tf.evaluation.evaluate import EvaluateConfig, evaluate

        def on_progress(done: int, total: int) -> None:
            if progress is not None:
                progress({"kind": "work", "done": done, "total": total, "unit": "img"})

        return evaluate(
            # Rebuilding the shipped models replaces their files on purpose.
            EvaluateConfig(model=model_dir, data=str(data), overwrite=True, **EVALUATE_OPTIONS),
            progress=on_progress,
        )

    keras = model_dir / "model.keras"
    return [
        Step(f"fit:{model.name}", fit_run, lambda record: _fit_complete(model_dir, epochs)),
        Step(
            f"tflite:{model.name}",
            tflite_run,
            lambda record: _made_from(tflite_path(model_dir), keras, record),
            lambda: fingerprint(keras),
        ),
        Step(
            f"evaluate:{model.name}",
            evaluate_run,
            lambda record: _made_from(evaluation_path(model_dir, kind, model.ratio), keras, record),
            lambda: fingerprint(keras),
        ),
    ]


def _write_models_config(out: Path) -> Path:
    from magsr_tf.inference.export import MODELS_CONFIG, list_served_models
    from magsr_tf.inference.models_config import merge_models_config, write_models_config

    served = list_served_models(out)
    names = [m.name for m in MODELS if m.name in served]
    if (out / MODELS_CONFIG).is_file():  # entries of other models stay as written
        return merge_models_config(out, names)
    return write_models_config(out, names=names)


def _write_tables(out: Path) -> Path:
    from magsr_tf.evaluation.report import ReportConfig, build_report

    names = tuple(m.name for m in MODELS)
    result = build_report(
        ReportConfig(models_dir=out, out=out / TABLES_FILE, tables_only=True, models=names)
    )
    return Path(result["report"])


# --------------------------------------------------------------------------- run


def reproduce(config: ReproduceConfig, progress: Progress | None = None) -> dict:
    """Runs (or continues) the plan; returns the ledger.

    Progress events: ``{"kind": "plan", "steps": [names]}``, then per step
    ``{"kind": "step_start" | "step_skip" | "step_done", "step", "index",
    "total"}`` (``step_done`` with ``"seconds"``) and, during a step,
    ``{"kind": "work", "step", "done", "total", "unit"}``.

    Raises:
        MagsrError: bad configuration or a failing step (the ledger keeps the
            finished steps; rerun to continue).
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = read_state(out)
    state["version"] = STATE_VERSION
    state["magsr_tf_version"] = __version__
    from magsr_tf.jobs.fit import git_commit

    state["git_commit"] = git_commit()
    state["recipe"] = {
        "datasets": {k: {**v, "out": str(config.dataset_path(k))} for k, v in DATASETS.items()},
        "models": [m.__dict__ for m in MODELS],
        "fit": FIT_OPTIONS,
        "evaluate": EVALUATE_OPTIONS,
    }
    steps = plan(config)
    emit = progress or (lambda event: None)
    emit({"kind": "plan", "steps": [s.name for s in steps]})
    t_run = time.perf_counter()
    by_name = {s.name: s for s in steps}
    for index, step in enumerate(steps):
        record = state["steps"].get(step.name, {})
        base = {"step": step.name, "index": index, "total": len(steps)}
        if (
            not step.complete(record)
            and step.needed_by
            and all(by_name[n].complete(state["steps"].get(n, {})) for n in step.needed_by)
        ):
            logger.info("%s: every step that needs it is complete, skipped", step.name)
            state["steps"][step.name] = {**record, "status": "not needed"}
            emit(
                {
                    "kind": "step_skip",
                    **base,
                    "seconds": record.get("seconds"),
                    "reason": "not needed",
                }
            )
            continue
        if step.complete(record):
            logger.info("%s: already complete, skipped", step.name)
            state["steps"][step.name] = {**record, "status": "done", "skipped_last_run": True}
            emit({"kind": "step_skip", **base, "seconds": record.get("seconds")})
            continue
        emit({"kind": "step_start", **base})
        state["steps"][step.name] = {**record, "status": "running"}
        write_json(state_path, state)

        def step_progress(event: dict, name: str = step.name) -> None:
            emit({**event, "step": name})

        t0 = time.perf_counter()
        try:
            step.run(step_progress)
        except BaseException:
            state["steps"][step.name] = {**record, "status": "interrupted"}
            write_json(state_path, state)
            raise
        seconds = time.perf_counter() - t0
        state["steps"][step.name] = {
            "status": "done",
            "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "skipped_last_run": False,
        }
        if step.source is not None:
            state["steps"][step.name]["source"] = step.source()
        write_json(state_path, state)
        emit({"kind": "step_done", **base, "seconds": seconds})
    state["last_run_seconds"] = time.perf_counter() - t_run
    write_json(state_path, state)
    return state
