"""The main job: ``magsr-tf fit typeI --ratio 8``.

Resolve (or generate) the dataset, check it, train the SR network on its LR
training images only, save the SR model (``.keras`` and a TF Serving
SavedModel under ``1/``), and score it on the test split against ground truth
next to grid-aligned interpolation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from magsr_tf import __version__
from magsr_tf.data.format import read_rows
from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import atomic_path
from magsr_tf.nn.model import ModelConfig
from magsr_tf.priors.refine import DEFAULT_STEPS as REFINE_DEFAULT_STEPS
from magsr_tf.training.config import TrainConfig
from magsr_tf.training.train import train_h5

log = logging.getLogger(__name__)

DATA_DIR = Path("data")
MODELS_DIR = Path("saved_models")
KINDS = ("typeI", "typeII")

# The documented default dataset that `fit typeI|typeII` uses, generated when
# missing: small enough to anneal in a few minutes on two cores, with stored
# sub-pixel phases as extra genuine LR images (see docs/training.md for the
# measurements behind these numbers). It lives at data/KIND_quick.h5, never at
# data/KIND.h5, where `generate KIND` writes the paper-size set: the quick run
# must neither take a 40,100-configuration file for its own nor block one.
QUICK_SUFFIX = "_quick"
QUICK_N_TRAIN = 500
QUICK_N_TEST = 100
QUICK_PHASES = 15

# Default training length: 900 steps of 32. The SR validation Corr peaks after
# 400-900 steps and then slowly falls while the LR loss keeps falling (the
# network starts filling the downsizer's null space): 4,800 steps ended at Corr
# 0.973 against 0.977 for 900 (docs/training.md).
QUICK_EPOCHS = 6
QUICK_STEPS_PER_EPOCH = 150
VALIDATION_IMAGES = 16

# The paper trains with Adam at a fixed 0.01. With the bicubic skip, 0.01 (fixed,
# cosine, warm-up + cosine or exponential decay) ends at Corr 0.961-0.973 on the
# quick dataset while 0.003 reaches 0.972-0.979. With a 10% linear warm-up the
# spread over seeds is smaller (0.9725-0.9764 over 3 seeds, against 0.967-0.980
# for plain cosine decay), so that is the default schedule (docs/training.md).
DEFAULT_LEARNING_RATE = 0.003

# Weight w of the energy prior, loss = MSE(LR in, LR out) + w E_H(SR)/N, used
# when the dataset records the Hamiltonian that made it (docs/physics_prior.md).
DEFAULT_PHYSICS_WEIGHT = 0.03
# The test-split table also scores "SR network + refine" and "bicubic + refine"
# with refine's own default number of steps.
DEFAULT_REFINE_STEPS = REFINE_DEFAULT_STEPS


@dataclass(frozen=True)
class FitConfig:
    """The ``fit`` job.

    Attributes:
        data: "typeI" or "typeII" (the quick default dataset ``data/KIND_quick.h5``,
            generated if missing) or an HDF5 path (e.g. ``data/typeI.h5`` from
            ``magsr-tf generate typeI``).
        ratio: super-resolution ratio (4, 8 or 16).
        epochs: training epochs (None: the quick-run default).
        steps_per_epoch: steps per epoch (None: the quick-run default).
        batch_size: global batch size.
        learning_rate: Adam learning rate (peak of the schedule).
        schedule: learning-rate schedule (see :class:`magsr_tf.training.config.TrainConfig`).
        out: model folder (None: ``saved_models/{name}_x{ratio}``).
        strategy: distribution strategy (see :class:`magsr_tf.training.config.TrainConfig`).
        seed: training seed.
        version: SavedModel version folder.
        data_dir: where "typeI"/"typeII" datasets live.
        physics_weight: weight w of the energy prior (``w E_H(SR) / N`` added to
            the LR loss); None means :data:`DEFAULT_PHYSICS_WEIGHT` when the
            dataset records its Hamiltonian and has 3 components, else 0.
        refine_steps: steps of the physics-informed reconstructions scored
            beside the network on the test split (0: skip them).
        degradation: blur of the training graph's downsizing (None: the
            paper's sigma = 1 Gaussian that made the datasets); see
            :mod:`magsr_tf.ops.degradation`.
        overwrite: replace a model folder that holds another run's model or
            committed files (its stale artifacts are removed). Without it such
            a folder is refused before any work; the folder of this same
            configuration is always continued (resume).
        noise: largest sigma of the input-noise augmentation (0: none; see
            :class:`magsr_tf.training.config.TrainConfig`).
        init_weights: a model folder or ``.keras`` file whose weights start the
            run (fine-tuning); None: random initialization.
    """

    data: str = "typeI"
    ratio: int = 8
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int = 32
    learning_rate: float = DEFAULT_LEARNING_RATE
    schedule: str = "warmup_cosine"
    out: Path | None = None
    strategy: str = "auto"
    seed: int = 0
    version: int = 1
    data_dir: Path = field(default=DATA_DIR)
    physics_weight: float | None = None
    refine_steps: int = DEFAULT_REFINE_STEPS
    degradation: str | None = None
    overwrite: bool = False
    noise: float = 0.0
    init_weights: str | None = None

    def __post_init__(self):
        if self.refine_steps < 0:
            raise MagsrError(f"refine_steps must be >= 0. Received: {self.refine_steps}")
        # Fail on bad options before any dataset is generated (any Hamiltonian will do).
        self.train_config(hamiltonian={"kind": "typeI"})
        if self.version < 1:
            raise MagsrError(f"version must be >= 1. Received: version={self.version}")

    def train_config(
        self, channels: int = 3, out_dir: Path | None = None, hamiltonian: dict | None = None
    ) -> TrainConfig:
        """The training configuration of this job for data with ``channels`` components.

        ``hamiltonian`` is the data's (None if the dataset does not say); the
        energy prior is on by default when it is known and the maps have 3
        components.
        """
        weight = self.physics_weight
        if weight is None:
            weight = DEFAULT_PHYSICS_WEIGHT if hamiltonian is not None and channels == 3 else 0.0
        if weight > 0 and hamiltonian is None:
            raise MagsrError(
                "the dataset records no Hamiltonian, so the energy prior cannot be used; "
                "pass --physics-weight 0"
            )
        return TrainConfig(
            model=ModelConfig(ratio=self.ratio, channels=channels, degradation=self.degradation),
            epochs=QUICK_EPOCHS if self.epochs is None else self.epochs,
            steps_per_epoch=(
                QUICK_STEPS_PER_EPOCH if self.steps_per_epoch is None else self.steps_per_epoch
            ),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            schedule=self.schedule,
            seed=self.seed,
            out_dir=out_dir,
            strategy=self.strategy,
            physics_weight=weight,
            hamiltonian=hamiltonian,
            noise=self.noise,
            init_weights=None if self.init_weights is None else str(self.init_weights),
        )

    @property
    def data_path(self) -> Path:
        """The dataset file: ``data_dir/KIND_quick.h5`` for a kind, else ``data`` itself."""
        if self.data in KINDS:
            return quick_dataset_path(self.data, self.data_dir)
        return Path(self.data)

    @property
    def name(self) -> str:
        """``KIND_quick_xR`` for a kind (never a shipped model's ``KIND_xR``), else ``STEM_xR``."""
        return f"{self.data_path.stem}_x{self.ratio}"

    @property
    def model_dir(self) -> Path:
        return Path(self.out) if self.out is not None else MODELS_DIR / self.name


def quick_dataset_path(kind: str, data_dir: Path = DATA_DIR) -> Path:
    """Where ``fit KIND`` keeps its quick default dataset: ``data_dir/KIND_quick.h5``."""
    return Path(data_dir) / f"{kind}{QUICK_SUFFIX}.h5"


Progress = Callable[[dict], None]


def ensure_dataset(config: FitConfig, progress: Progress | None = None) -> Path:
    """Returns the dataset path, generating the documented default one if it is missing.

    Reports ``{"kind": "dataset", "path", "exists", "quick"}`` first, so that
    the job's first line can name the file it uses.
    """
    path = config.data_path
    quick = config.data in KINDS
    if progress is not None:
        progress({"kind": "dataset", "path": str(path), "exists": path.exists(), "quick": quick})
    if path.exists() or not quick:
        return path
    from magsr_tf.data.generation import GenerateConfig, generate

    gen = GenerateConfig(
        kind=config.data,
        n=QUICK_N_TRAIN + QUICK_N_TEST,
        n_test=QUICK_N_TEST,
        out=path,
        phases=QUICK_PHASES,
    )
    if progress is not None:
        progress({"kind": "generate_start", "path": str(path), "n": gen.n, "phases": gen.phases})

    def gen_progress(done: int, total: int) -> None:
        if progress is not None:
            progress({"kind": "generate", "done": done, "total": total})

    return generate(gen, progress=gen_progress)


def score_test_split(
    sr_model,
    path: Path,
    ratio: int,
    n_test: int,
    batch: int = 32,
    hamiltonian=None,
    refine_steps: int = 0,
) -> dict:
    """Scores the SR model and the interpolation baselines on the test split.

    Returns:
        ``{"methods": {name: metrics.score(...)}, "gain_db": {baseline: dB}}``;
        ``gain_db`` is 10 log10(MSE_baseline / MSE_SR) against the grid-aligned
        baselines (the honest comparison). With a Hamiltonian and
        ``refine_steps > 0`` the methods include ``sr_refine`` and
        ``bicubic_refine`` (:mod:`magsr_tf.priors.refine`), and each method's
        ``energy_per_spin`` sits beside the ground truth's (``energy_truth``).
    """
    import h5py

    from magsr_tf.evaluation import metrics
    from magsr_tf.inference.apply import apply_model
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.ops.spins import unit_normalize

    with h5py.File(path, "r") as f:
        n = f["hr"].shape[0]
    hr = read_rows(path, "hr", n - n_test, n)
    if not np.isfinite(hr).all():
        raise MagsrError(f"{path}: the test split's ground truth 'hr' contains NaN or inf")
    lr = read_rows(path, f"lr/x{ratio}", n - n_test, n)
    sr = apply_model(sr_model, lr, batch_size=batch)
    methods = {"sr_network": metrics.score(hr, sr)}
    unit_maps = {}
    for method in ("bicubic", "bilinear", "gaussian"):
        up = upsample(lr, ratio, method=method, aligned=True)
        unit_maps[method] = unit_normalize(up)
        methods[f"{method}_aligned"] = metrics.score(hr, up)
        methods[f"{method}_aligned_unit"] = metrics.score(hr, unit_maps[method])
    methods["bicubic_paper_misaligned"] = metrics.score(
        hr, upsample(lr, ratio, method="bicubic", aligned=False)
    )
    energies = {}
    if hamiltonian is not None and hr.shape[-1] == 3:
        from magsr_tf.evaluation.evaluate import refine_maps
        from magsr_tf.physics.hamiltonian import energy_per_spin

        refined = refine_maps(lr, sr, ratio, hamiltonian, refine_steps, "periodic")
        for name, maps in refined.items():
            methods[name] = metrics.score(hr, maps)
        energies = {
            "energy_truth": float(energy_per_spin(hr, hamiltonian).mean()),
            "sr_network": float(energy_per_spin(sr, hamiltonian).mean()),
            **{k: float(energy_per_spin(v, hamiltonian).mean()) for k, v in refined.items()},
            "bicubic_aligned_unit": float(
                energy_per_spin(unit_maps["bicubic"], hamiltonian).mean()
            ),
        }
    sr_mse = methods["sr_network"]["mse"]["mean"]
    gains = {
        name: 10 * np.log10(methods[name]["mse"]["mean"] / sr_mse)
        for name in methods
        if name != "sr_network"
    }
    return {
        "methods": methods,
        "gain_db": {k: float(v) for k, v in gains.items()},
        "energy_per_spin": energies,
    }


def git_commit() -> str | None:
    """The commit of the running code (None outside a git checkout): provenance of models."""
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


# What a run leaves in its model folder besides the files it always rewrites: removed
# when --overwrite replaces another run's model, so nothing stale sits beside the new one.
_STALE_GLOBS = (
    "train",
    "*.tflite",
    "evaluation_*.json",
    "figures",
    "summary.json",
    "hamiltonian.json",
    "noise_calibration.json",
    "[0-9]*",
)


def committed_files(folder: Path) -> list[str]:
    """Files under ``folder`` tracked by git (empty outside a checkout or without git)."""
    import subprocess

    try:
        proc = subprocess.run(
            ["git", "ls-files", "--", "."],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return proc.stdout.split() if proc.returncode == 0 else []


def _comparable(train_config: dict) -> dict:
    import json

    from magsr_tf.io.writers import to_jsonable

    # The number of epochs may grow: a rerun with more epochs continues the same run.
    ignored = ("out_dir", "magsr_tf_version", "epochs")
    # Options added later: a folder written before them holds a run with their defaults.
    later = {
        f.name: f.default
        for f in fields(TrainConfig)
        if f.name in ("noise", "noise_clean_fraction", "init_weights")
    }
    keep = {**later, **{k: v for k, v in train_config.items() if k not in ignored}}
    return json.loads(json.dumps(to_jsonable(keep)))


def _stored_config(model_dir: Path) -> dict | None:
    import json

    try:
        stored = json.loads((model_dir / "train_config.json").read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) else None


def _same_run(config: FitConfig, path: Path, channels: int | None, ham_json) -> bool:
    """Whether the model folder holds a run of this very configuration (to resume)."""
    stored = _stored_config(config.model_dir)
    if stored is None:
        return False
    if channels is None:  # before the dataset is read: assume the stored data's properties
        model = stored.get("model")
        channels = model.get("channels", 3) if isinstance(model, dict) else 3
        ham_json = stored.get("hamiltonian")
    try:
        mine = config.train_config(channels, config.model_dir / "train", ham_json).to_dict()
    except MagsrError:
        return False
    return _comparable(stored) == _comparable({**mine, "data": str(path)})


def check_model_dir(
    config: FitConfig, path: Path, channels: int | None = None, ham_json=None
) -> bool:
    """Refuses a model folder holding another run's model or committed files.

    Returns:
        True when ``--overwrite`` replaces another run's model (its stale
        artifacts must go), False when the folder is new, empty or this run's.

    Raises:
        MagsrError: the folder is a file, holds committed files, or another
            run's model, and ``config.overwrite`` is False.
    """
    model_dir = config.model_dir
    if not model_dir.exists():
        return False
    if not model_dir.is_dir():
        raise MagsrError(f"--out {model_dir} is a file, not a folder")
    if not any(not p.name.startswith(".") for p in model_dir.iterdir()):
        return False
    same = _same_run(config, path, channels, ham_json)
    if config.overwrite:
        return not same
    committed = committed_files(model_dir)
    if committed:
        raise MagsrError(
            f"{model_dir} holds {len(committed)} committed file(s) (e.g. {committed[0]}); "
            "pass --overwrite to replace that model, or choose another --out"
        )
    if not same:
        raise MagsrError(
            f"{model_dir} holds another run's model (other data or options); "
            "pass --overwrite to replace it, or choose another --out"
        )
    return False


def _remove_stale(model_dir: Path) -> None:
    import shutil

    for pattern in _STALE_GLOBS:
        for stale in model_dir.glob(pattern):
            if stale.is_dir() and (pattern != "[0-9]*" or stale.name.isdigit()):
                shutil.rmtree(stale)
            elif stale.is_file() and pattern != "[0-9]*":
                stale.unlink()
    log.info("removed the previous run's artifacts from %s", model_dir)


def _save_keras_atomic(sr_model, path: Path) -> None:
    with atomic_path(path) as tmp:  # ends in .keras, as Keras requires
        sr_model.save(tmp)


def fit(config: FitConfig, progress: Progress | None = None) -> dict:
    """Runs the whole job and returns the summary (also written to ``summary.json``).

    Rerunning an interrupted job resumes training from its last checkpoint.
    """
    from magsr_tf.data.format import check_finite, check_ratio, open_info
    from magsr_tf.inference.models_config import check_models_config
    from magsr_tf.io.writers import write_json

    t_start = time.perf_counter()
    # Refuse a folder of another run (and an unreadable models.config) before any work.
    check_model_dir(config, config.data_path)
    check_models_config(config.model_dir.parent)
    path = ensure_dataset(config, progress)
    info = open_info(path)
    check_ratio(info, config.ratio)
    if info.channels != 3 and info.channels != 1:
        raise MagsrError(f"{path}: spin maps must have 1 or 3 channels, found {info.channels}")
    check_finite(path, config.ratio, hr=False)  # training never reads HR
    n_train = info.n - info.n_test
    if n_train < 1:
        raise MagsrError(f"{path} has no training rows (n={info.n}, n_test={info.n_test})")

    model_dir = config.model_dir
    from magsr_tf.physics.hamiltonian_io import dataset_hamiltonian, hamiltonian_to_json

    ham = dataset_hamiltonian(path)
    ham_json = hamiltonian_to_json(ham) if ham is not None else None
    if check_model_dir(config, path, info.channels, ham_json):
        _remove_stale(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    train_config = config.train_config(info.channels, model_dir / "train", ham_json)
    if ham_json is not None:
        # refine --init MODEL and evaluate read the training data's Hamiltonian here.
        write_json(model_dir / "hamiltonian.json", ham_json)
    write_json(
        model_dir / "train_config.json",
        {**train_config.to_dict(), "data": str(path), "magsr_tf_version": __version__},
    )
    n_val = min(VALIDATION_IMAGES, info.n_test)
    val = None
    if n_val and info.n_test:
        start = info.n - info.n_test
        val = (
            read_rows(path, f"lr/x{config.ratio}", start, start + n_val),
            read_rows(path, "hr", start, start + n_val),
        )
    if progress is not None:
        progress({"kind": "train_start", "n_train": n_train, "config": train_config.to_dict()})
    t_train = time.perf_counter()
    result = train_h5(path, train_config, stop=n_train, val=val, progress=progress)
    train_seconds = time.perf_counter() - t_train

    from magsr_tf.inference.export import export_saved_model
    from magsr_tf.inference.models_config import merge_models_config

    _save_keras_atomic(result.sr_model, model_dir / "model.keras")
    saved = export_saved_model(result.sr_model, model_dir, version=config.version, overwrite=True)
    # Add this model to the multi-model server config; other entries stay as written.
    merge_models_config(model_dir.parent, [model_dir.name])
    from magsr_tf.inference.noise_level import write_calibration
    from magsr_tf.jobs.calibrate import calibrate_noise_level, training_lr

    lr_calibration = training_lr(path, config.ratio, n_train)
    write_calibration(model_dir, calibrate_noise_level(result.sr_model, lr_calibration))

    summary = {
        "name": config.name,
        "data": str(path),
        "kind": info.kind,
        "ratio": config.ratio,
        "hamiltonian": ham_json,
        "physics_weight": train_config.physics_weight,
        "seed": config.seed,
        "configuration": train_config.to_dict(),
        "commit": git_commit(),
        "magsr_tf_version": __version__,
        "n_train": n_train,
        "n_test": info.n_test,
        "train_seconds": train_seconds,
        "total_seconds": None,
        "resumed_from_epoch": result.resumed_from,
        "history": result.history,
        "saved_model": str(saved),
        "keras_model": str(model_dir / "model.keras"),
    }
    if info.n_test:
        if progress is not None:
            progress({"kind": "evaluate_start", "n_test": info.n_test})
        summary["test"] = score_test_split(
            result.sr_model,
            path,
            config.ratio,
            info.n_test,
            hamiltonian=ham,
            refine_steps=config.refine_steps,
        )
    summary["total_seconds"] = time.perf_counter() - t_start
    write_json(model_dir / "summary.json", summary)
    return summary
