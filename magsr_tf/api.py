"""The Python API for notebooks: thin names for what the CLI commands do.

Every function here calls the library function behind a command (``predict``,
``refine``, ``generate``, ``fit``, ``evaluate``) and imports it only when
called, so ``import magsr_tf`` stays light. Examples: docs/api.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_MODELS_ROOT = Path("saved_models")


def super_resolve(
    lr,
    model,
    batch_size: int = 8,
    padding: str | None = None,
    models_root: str | Path = DEFAULT_MODELS_ROOT,
    out: str | Path | None = None,
    max_memory: str | int | None = None,
):
    """SR of a NumPy array with a trained network (``magsr-tf predict`` in memory).

    Args:
        lr: ``[h, w, C]`` or ``[n, h, w, C]`` LR spin maps (C = 1 or 3).
        model: a name under ``models_root`` (``"typeI_x8"``), a model folder, a
            ``.keras`` file or a loaded Keras model.
        batch_size: maps per network call.
        padding: tile borders of large maps (default: the model's own padding).
        models_root: where model names are looked up.
        out: stream the SR into this ``.npy`` and return its read-only memory map.
        max_memory: memory limit (``"4G"``; default ``$MAGSR_MAX_MEMORY`` or 80 %
            of MemAvailable).

    Returns:
        float32 SR maps of the input's rank.

    Raises:
        MagsrError: bad input (shape, NaN, |m| > 1, component count) or model,
            or an SR whose estimated memory exceeds the limit.
    """
    from magsr_tf.inference.apply import super_resolve as run

    return run(
        lr,
        model,
        batch_size=batch_size,
        padding=padding,
        models_root=models_root,
        out=out,
        max_memory=max_memory,
    )


def load_model(model, models_root: str | Path = DEFAULT_MODELS_ROOT):
    """The Keras SR model of a name under ``models_root``, a folder or a ``.keras`` file."""
    from magsr_tf.inference.apply import load_model as run

    return run(model, models_root)


def refine(
    lr,
    ratio: int | None = None,
    hamiltonian=None,
    init="bicubic",
    steps: int | None = None,
    config=None,
    models_root: str | Path = DEFAULT_MODELS_ROOT,
    progress=None,
    noise: float | None = None,
):
    """SR under the data's Hamiltonian, consistent with the LR input (``magsr-tf refine``).

    Args:
        lr: ``[h, w, 3]`` or ``[n, h, w, 3]`` LR spin maps.
        ratio: SR ratio (None: the ``init`` model's).
        hamiltonian: ``"typeI"``, ``"typeII"``, a JSON file or dict (None: the
            ``init`` model folder's ``hamiltonian.json``).
        init: ``"bicubic"``, a model (name, folder or Keras model), initial SR
            maps, or a function of LR batches.
        steps: optimizer steps (default that of :class:`~magsr_tf.priors.refine.RefineConfig`).
        config: a full :class:`~magsr_tf.priors.refine.RefineConfig` instead of ``steps``.
        models_root: where model names are looked up.
        progress: called with a dict per recorded step.
        noise: the LR noise level per component; None estimates it from the maps
            (``record["noise"]`` says how), and noisy maps are fitted with a
            likelihood weight instead of exactly (docs/noise.md).

    Returns:
        ``(sr, record)``: the SR maps (input's rank) and the record ``refine`` writes as JSON.
    """
    from magsr_tf.jobs.refine import refine_array
    from magsr_tf.priors.refine import RefineConfig

    if config is None:
        config = RefineConfig() if steps is None else RefineConfig(steps=steps)
    return refine_array(lr, ratio, hamiltonian, init, config, models_root, progress, noise)


def _config(cls, config, kwargs: dict[str, Any]):
    if config is not None and kwargs:
        raise TypeError("give either a config or keyword arguments, not both")
    return config if config is not None else cls(**kwargs)


def generate(config=None, progress=None, **kwargs) -> Path:
    """Anneals a dataset (``magsr-tf generate``); returns the HDF5 file's path.

    Args:
        config: a :class:`~magsr_tf.data.generation.GenerateConfig`, or its
            fields as keyword arguments (``kind="typeI", n=20, out="data/x.h5"``).
        progress: called with progress events.
    """
    from magsr_tf.data.generation import GenerateConfig
    from magsr_tf.data.generation import generate as run

    return run(_config(GenerateConfig, config, kwargs), progress)


def fit(config=None, progress=None, **kwargs) -> dict:
    """Trains on LR only, exports and scores a model (``magsr-tf fit``); returns the summary.

    Args:
        config: a :class:`~magsr_tf.jobs.fit.FitConfig`, or its fields as keyword arguments.
        progress: called with progress events.
    """
    from magsr_tf.jobs.fit import FitConfig
    from magsr_tf.jobs.fit import fit as run

    return run(_config(FitConfig, config, kwargs), progress)


def evaluate(config=None, progress=None, **kwargs) -> dict:
    """Scores a model on a test split (``magsr-tf evaluate``); returns every number.

    Args:
        config: an :class:`~magsr_tf.evaluation.evaluate.EvaluateConfig`, or its
            fields as keyword arguments (``model=..., data="typeI"``).
        progress: called with ``(done, total)``.
    """
    from magsr_tf.evaluation.evaluate import EvaluateConfig
    from magsr_tf.evaluation.evaluate import evaluate as run

    return run(_config(EvaluateConfig, config, kwargs), progress)
