"""``magsr-tf refine`` end to end: read LR inputs, pick the ratio, the Hamiltonian and
the starting map, run :func:`magsr_tf.priors.refine.refine`, write the results.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.apply import apply_model
from magsr_tf.inference.noise_level import NoiseEstimate, estimate_noise, read_calibration
from magsr_tf.inference.noise_switch import NoiseAwareSR, load_noise_aware
from magsr_tf.io.inputs import check_memory, load_inputs, memory_limit
from magsr_tf.io.pictures import write_png
from magsr_tf.io.writers import write_json, write_npy
from magsr_tf.ops.kernels import RATIOS
from magsr_tf.ops.windows import check_window, default_boundary
from magsr_tf.physics.hamiltonian_io import resolve_hamiltonian
from magsr_tf.priors.refine import Progress, RefineConfig, RefineResult, describe, refine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineJob:
    """What ``magsr-tf refine`` does.

    Attributes:
        inputs: LR inputs as ``predict`` takes them (``.npy``, ``FILE.h5:DATASET[sel]``).
        ratio: SR ratio; None takes the ``init`` model's.
        hamiltonian: "typeI", "typeII" or a JSON file; None takes the ``init``
            model's (``hamiltonian.json`` in its folder) or, for an HDF5 input, the
            dataset's.
        init: "bicubic" or a model folder / ``.keras`` file whose SR starts the refinement.
        out_dir: output folder (``NAME_sr.npy``, ``NAME_sr.png``, ``NAME_refine.json``).
        config: the optimizer settings.
        overwrite: replace existing outputs.
        models_root: where a bare model name given as ``init`` is looked up.
        noise: the LR noise level per component; None estimates it from each
            map (:func:`noise_estimate`).
        boundary: "periodic" or "open" (a window of a larger texture: the
            network start and the reconstruction see an open border,
            :mod:`magsr_tf.ops.windows`); None: open for pictures and microscope
            files, periodic for ``.npy`` and ``.h5``.
    """

    inputs: tuple[str, ...]
    ratio: int | None = None
    hamiltonian: str | None = None
    init: str = "bicubic"
    out_dir: Path = Path("refined")
    config: RefineConfig = field(default_factory=RefineConfig)
    overwrite: bool = False
    models_root: Path = Path("saved_models")
    noise: float | None = None
    boundary: str | None = None

    def __post_init__(self):
        from magsr_tf.ops.windows import check_boundary

        check_boundary(self.boundary)
        if self.noise is not None and not 0 <= self.noise <= 1:
            raise MagsrError(f"noise must be in [0, 1]. Received: noise={self.noise}")
        if not self.inputs:
            raise MagsrError("no input given")
        if self.ratio is not None and self.ratio not in RATIOS:
            raise MagsrError(f"ratio must be one of {RATIOS}. Received: ratio={self.ratio}")
        if self.init != "bicubic" and not self.init:
            raise MagsrError("init must be 'bicubic' or a model")


@dataclass
class RefineOutput:
    """One refined input: its name, the result and the files written."""

    name: str
    result: RefineResult
    files: list[Path]
    noise: NoiseEstimate | None = None


def _model_folder(init: str, models_root: Path) -> Path:
    path = Path(init)
    if not path.exists() and (Path(models_root) / init).exists():
        path = Path(models_root) / init
    if not path.exists():
        raise MagsrError(f"no model at {init} (nor under {models_root})")
    return path


def model_start(init, ratio: int | None, hamiltonian, models_root: Path):
    """A trained network as the starting map of a refinement.

    Args:
        init: a model folder, a ``.keras`` file, a name under ``models_root``,
            or a loaded Keras model.
        ratio: the requested ratio (None: the model's).
        hamiltonian: the requested Hamiltonian (None: the model folder's
            ``hamiltonian.json``, if there is one).
        models_root: where a bare model name is looked up.

    Returns:
        ``(init_fn, ratio, hamiltonian, init_name)``: the model's SR as a function
        of LR batches, its ratio, the Hamiltonian to use, and what to record.

    Raises:
        MagsrError: no such model, a model of another ratio, or not a 3-component model.
    """
    from magsr_tf.nn.model import load_sr_model, model_ratio

    if isinstance(init, (str, Path)):
        folder = _model_folder(str(init), models_root)
        model = load_sr_model(folder)
        ham_file = (folder if folder.is_dir() else folder.parent) / "hamiltonian.json"
        if hamiltonian is None and ham_file.is_file():
            hamiltonian = str(ham_file)
        name = str(folder)
    else:
        model, folder, name = init, "the given model", getattr(init, "name", "model")
    own_ratio = model_ratio(model)
    if ratio is not None and ratio != own_ratio:
        raise MagsrError(
            f"the model {folder} is a x{own_ratio} model but --ratio is {ratio}. "
            f"Received: ratio={ratio}"
        )
    if int(model.inputs[0].shape[-1]) != 3:
        raise MagsrError(f"the model {folder} is not a 3-component spin model")

    if isinstance(folder, Path):
        # The clean network, or its noise-robust companion for noisy maps.
        init_fn = load_noise_aware(folder, sr_model=model)
    else:

        def init_fn(lr):
            return apply_model(model, lr)

    return init_fn, own_ratio, hamiltonian, name


def noise_probe(ratio: int, ham, models_root: Path):
    """A calibrated model of this ratio and Hamiltonian under ``models_root``, or None.

    A bicubic start has no network to measure the noise with; at ratio 8 and
    above the spectral floor cannot (the texture fills the LR band), so the
    noise is measured with the residual of a shipped model of the same data.
    """
    from magsr_tf.physics.hamiltonian_io import hamiltonian_to_json

    root = Path(models_root)
    if not root.is_dir():
        return None
    want = hamiltonian_to_json(ham)
    for folder in sorted(root.iterdir()):
        try:
            info = json.loads((folder / "train_config.json").read_text())
            if info["model"]["ratio"] != ratio or info["model"]["channels"] != 3:
                continue
            if hamiltonian_to_json(resolve_hamiltonian(str(folder / "hamiltonian.json"))) != want:
                continue
            if read_calibration(folder) is None:
                continue
        except (OSError, ValueError, KeyError, TypeError, MagsrError):
            continue
        return model_start(folder, ratio, ham, root)[0], folder.name
    return None


def open_start(init_fn, ratio: int):
    """The starting network of an open window (None stays None: bicubic)."""
    from magsr_tf.ops.windows import OpenBoundary

    if init_fn is None:
        return None
    if isinstance(init_fn, NoiseAwareSR):
        return init_fn.with_boundary("open")
    return OpenBoundary(init_fn, ratio)


def noise_estimate(lr, ratio: int, start, init_fn, given, probe=None) -> NoiseEstimate:
    """The noise level used to weight the LR misfit of each map.

    Args:
        lr: ``[n, h, w, 3]`` LR maps.
        ratio: SR ratio.
        start: the starting SR maps (None: bicubic).
        init_fn: what made ``start``: a :class:`~magsr_tf.inference.noise_switch.NoiseAwareSR`
            has measured the noise already (from the clean network's residual).
        given: the user's sigma (None: estimate).
        probe: ``(sr_fn, name)`` of a calibrated network to measure with when
            the start is bicubic (:func:`noise_probe`).
    """
    n = len(lr)
    if given is not None:
        return NoiseEstimate(np.full(n, float(given)), "given")
    if start is not None and isinstance(init_fn, NoiseAwareSR) and init_fn.estimate is not None:
        return init_fn.estimate
    if probe is not None:
        fn, name = probe
        fn(lr)
        if fn.estimate is not None:
            return NoiseEstimate(fn.estimate.sigma, f"network residual ({name})")
    if ratio <= 4:
        return estimate_noise(lr, ratio)
    log.warning(
        "no calibrated model of x%d to measure the LR noise with: refining as clean input "
        "(give --noise SIGMA for noisy maps)",
        ratio,
    )
    return NoiseEstimate(np.zeros(n), "assumed clean (no estimator at this ratio)")


def model_kappa(init_fn, noise: NoiseEstimate, config: RefineConfig):
    """kappa per map from the init model's measured refine policy (None: the config's)."""
    if not isinstance(init_fn, NoiseAwareSR):
        return None
    return init_fn.refine_kappa(noise.sigma, config.noise_kappa)


def record(
    result: RefineResult,
    ratio: int,
    init_name: str,
    ham,
    config: RefineConfig,
    noise: NoiseEstimate | None = None,
) -> dict:
    """The JSON-able record of one refinement (``NAME_refine.json`` without its input)."""
    return {
        "ratio": ratio,
        "init": init_name,
        "noise": None if noise is None else noise.to_dict(),
        **describe(ham, config),
        "seconds": result.seconds,
        "energy_per_spin": result.energy_per_spin,
        "lr_misfit": result.lr_misfit,
        "history": result.history,
    }


def _input_hamiltonian(spec: str):
    """The Hamiltonian recorded in an HDF5 input's file, or None."""
    from magsr_tf.physics.hamiltonian_io import dataset_hamiltonian

    base = re.split(r"\.(h5|hdf5)", spec, maxsplit=1)
    if len(base) < 2:
        return None
    return dataset_hamiltonian(base[0] + "." + base[1])


def run_refine(job: RefineJob, progress: Progress | None = None) -> list[RefineOutput]:
    """Refines every input and writes ``NAME_sr.npy`` (``[n, H, W, 3]`` unit spins),
    ``NAME_sr.png`` (the first map) and ``NAME_refine.json`` (settings, energies, misfits).

    Raises:
        MagsrError: bad inputs, unknown Hamiltonian, a model of another ratio,
            existing outputs (nothing is written then).
    """
    batches = load_inputs(job.inputs)
    for batch in batches:  # load_inputs already checked values and lengths
        if batch.lr.shape[-1] != 3:
            raise MagsrError(
                f"refine needs 3-component spin maps; {batch.source} has {batch.lr.shape[-1]}"
            )
    ratio, ham, init_fn, init_name = job.ratio, job.hamiltonian, None, "bicubic"
    if job.init != "bicubic":
        init_fn, ratio, ham, init_name = model_start(job.init, ratio, ham, job.models_root)
    if ratio is None:
        # FILE.h5:lr/x8 names its ratio.
        named = {re.search(r":/?lr/x(\d+)", b.source) for b in batches}
        found = {int(m[1]) for m in named if m is not None}
        if len(found) == 1 and None not in named:
            ratio = found.pop()
    if ratio is None:
        raise MagsrError("give --ratio (or --init MODEL, whose ratio is used)")
    if ham is None:
        found = {_input_hamiltonian(b.source) for b in batches} - {None}
        if len(found) != 1:
            raise MagsrError(
                "give --hamiltonian typeI|typeII|FILE.json (the inputs do not record one)"
            )
        ham = found.pop()
    ham = resolve_hamiltonian(ham)
    out_dir = Path(job.out_dir)
    boundaries = [job.boundary or default_boundary(batch.source) for batch in batches]
    for batch, boundary in zip(batches, boundaries, strict=True):
        if boundary == "open":
            check_window(batch.lr.shape, batch.source)
    plans = []
    for batch in batches:
        h, w = batch.lr.shape[1:3]
        if h * ratio > 4096 or w * ratio > 4096:
            raise MagsrError(f"{batch.source}: SR maps of {h * ratio}x{w * ratio} are too large")
        # Memory rule: ~16 float32 copies of the SR (maps, gradients, Adam moments,
        # energy temporaries) plus TensorFlow must fit the limit of predict.
        need = 16 * batch.lr.shape[0] * h * w * ratio**2 * 3 * 4 + 750 * 2**20
        check_memory(need, f"{batch.source}: refining x{ratio}", memory_limit())
        targets = [out_dir / f"{batch.name}_sr{suffix}" for suffix in (".npy", ".png")]
        targets.append(out_dir / f"{batch.name}_refine.json")
        for target in targets:
            if target.exists() and not job.overwrite:
                raise MagsrError(f"{target} already exists; use --overwrite or another --out")
        plans.append((batch, targets))
    outputs = []
    probe = None
    if init_fn is None and job.noise is None and ratio > 4:
        probe = noise_probe(ratio, ham, job.models_root)
    for (batch, targets), boundary in zip(plans, boundaries, strict=True):
        fn, config, batch_probe = init_fn, job.config, probe
        if boundary == "open":
            config = replace(config, boundary="open", padding="reflect")
            fn = open_start(init_fn, ratio)
            if probe is not None:
                batch_probe = (probe[0].with_boundary("open"), probe[1])
        start = None if fn is None else np.asarray(fn(batch.lr), dtype=np.float32)
        noise = noise_estimate(batch.lr, ratio, start, fn, job.noise, batch_probe)
        log.info("%s: LR noise %.4f (%s)", batch.source, noise.sigma.mean(), noise.method)
        result = refine(
            batch.lr,
            ratio,
            ham,
            init=start,
            config=config,
            progress=progress,
            noise=noise.sigma,
            kappa=model_kappa(fn, noise, config),
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        write_npy(targets[0], result.sr[0] if batch.single else result.sr)
        write_png(targets[1], result.sr[0])
        entry = record(result, ratio, init_name, ham, config, noise)
        write_json(targets[2], {"input": batch.source, **entry})
        outputs.append(RefineOutput(batch.name, result, targets, noise))
    return outputs


def refine_array(
    lr,
    ratio: int | None = None,
    hamiltonian=None,
    init="bicubic",
    config: RefineConfig | None = None,
    models_root: str | Path = Path("saved_models"),
    progress: Progress | None = None,
    noise: float | None = None,
):
    """SR of LR spin arrays under a Hamiltonian, in memory (the notebook form of ``refine``).

    Args:
        lr: ``[h, w, 3]`` or ``[n, h, w, 3]`` LR spin maps.
        ratio: SR ratio; None takes the ``init`` model's.
        hamiltonian: ``"typeI"``, ``"typeII"``, a JSON file, a dict or a
            Hamiltonian; None takes the ``init`` model folder's.
        init: ``"bicubic"``, a model (name, folder, ``.keras`` file or loaded
            Keras model), initial SR maps, or a function ``lr_batch -> sr_batch``.
        config: optimizer settings (default :class:`RefineConfig`).
        models_root: where model names are looked up.
        progress: called with a dict per recorded step.
        noise: the LR noise level per component (None: estimated as ``refine`` does).

    Returns:
        ``(sr, record)``: SR maps of the input's rank, and the JSON-able record
        that ``magsr-tf refine`` writes to ``NAME_refine.json``.

    Raises:
        MagsrError: bad input, no ratio or Hamiltonian to use, or a model of another ratio.
    """
    from magsr_tf.io.inputs import as_lr_batch

    array = np.asarray(lr)
    batch, single = as_lr_batch(array, f"LR array {array.shape}")
    if batch.shape[-1] != 3:
        raise MagsrError(f"refine needs 3-component spin maps. Received: shape={array.shape}")
    config = config or RefineConfig()
    init_fn, init_name = None, "bicubic"
    if isinstance(init, str) and init == "bicubic":
        pass
    elif isinstance(init, (str, Path)) or hasattr(init, "layers"):
        init_fn, ratio, hamiltonian, init_name = model_start(
            init, ratio, hamiltonian, Path(models_root)
        )
    elif callable(init):
        init_fn, init_name = init, getattr(init, "__name__", "function")
    else:
        init_fn = np.asarray(init, dtype=np.float32)
        init_fn = init_fn[None] if init_fn.ndim == 3 else init_fn
        init_name = "array"
    if ratio is None:
        raise MagsrError("give ratio= (or init=MODEL, whose ratio is used)")
    if hamiltonian is None:
        raise MagsrError("give hamiltonian= ('typeI', 'typeII', a JSON file or a dict)")
    ham = resolve_hamiltonian(hamiltonian)
    start = None
    if callable(init_fn):
        start = np.asarray(init_fn(batch), dtype=np.float32)
    elif init_fn is not None:
        start = init_fn
    probe = None
    if start is None and noise is None and ratio > 4:
        probe = noise_probe(ratio, ham, Path(models_root))
    estimate = noise_estimate(batch, ratio, start, init_fn, noise, probe)
    result = refine(
        batch,
        ratio,
        ham,
        init=start,
        config=config,
        progress=progress,
        noise=estimate.sigma,
        kappa=model_kappa(init_fn, estimate, config),
    )
    entry = record(result, ratio, init_name, ham, config, estimate)
    return (result.sr[0] if single else result.sr), entry
