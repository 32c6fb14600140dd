"""fit-image: super-resolve one microscope image, trained on its own patches (Fig. 7).

Lee et al. (Sci. Rep. 2023, Fig. 7 and "Experimental images") train the SR
network on many random LR patches cut from one large experimental image
(24,000 from a MOKE image, 2,800 from SPLEEM) and then apply it to the whole
image. MOKE measures one component (m_z), so the network has 1 or 3 channels.
Microscope images are not periodic: the network pads by reflection.

Pipeline of :func:`fit_image`:

1. read the image(s) and map each linearly onto a spin component in [-1, 1]
   (robust percentiles, clipped): one image = m_z, three images = (x, y, z);
2. cut random LR patches (non-periodic crops);
3. train the unsupervised network on them (LR only, :mod:`magsr_tf.training.train`,
   whose augmentation rotates lattice and spins together and flips spins);
4. apply it to the whole image in overlapping tiles (exactly equal to one pass
   over the whole image, see :func:`tiled_apply`, but with bounded memory);
5. write the SR image with aligned Gaussian and bicubic up-sampling beside it
   (a figure like the paper's Fig. 7), the Keras model and its SavedModel.

With ``degrade=True`` the image is taken as the *native* truth: it is
downsized by the network's own Gaussian operator, the fit sees only that LR
image, and the SR is scored against the native image next to the aligned
bicubic baseline (DESIGN.md, "Experiments": the fair real-image check).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf.data.patches import MIN_PATCH, random_patches
from magsr_tf.errors import MagsrError
from magsr_tf.evaluation.figures import comparison_figure
from magsr_tf.evaluation.metrics import pearson
from magsr_tf.inference.tiling import tiled_apply
from magsr_tf.io.formats import write_sr_files
from magsr_tf.io.pictures import HIGH_PERCENTILE, LOW_PERCENTILE, picture_spins, write_png
from magsr_tf.io.writers import atomic_path, write_json, write_npy
from magsr_tf.ops.kernels import RATIOS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitImageConfig:
    """What `magsr-tf fit-image` does.

    Attributes:
        images: one image (m_z) or three (m_x, m_y, m_z).
        ratio: super-resolution ratio r (4, 8 or 16).
        patch: LR patch edge for training.
        patches: number of random patches (the paper: 24,000 from MOKE, 2,800 from SPLEEM).
        padding: the network's padding; microscope images are not periodic: "reflect".
        epochs: training epochs over the patches.
        batch_size: training batch size.
        learning_rate: Adam learning rate (the paper's 0.01).
        seed: seed of the patch cutting and of the training.
        out_dir: output model folder (default ``saved_models/<image stem>_x<r>``).
        degrade: take the image as the native truth, fit on its own Gaussian
            downsizing by r, and score the SR against it (the fair check).
        crop: ``(height, width)`` of a central crop taken first (None: whole image).
        low_percentile: percentile mapped to -1.
        high_percentile: percentile mapped to +1.
        value_range: pixel values of m = -1 and m = +1 (replaces the percentiles).
        schedule: learning-rate schedule of the trainer, "constant" or "cosine".
        residual: add the aligned bicubic up-sampling as a global skip (see
            :class:`~magsr_tf.nn.model.ModelConfig`). None: on for one component,
            off for three, as measured in docs/real_images.md.
        augment: the trainer's random quarter turns (lattice and spins) and spin flips.
        overwrite: replace an existing model in ``out_dir``.
        degradation: the blur that made the LR image (``gaussian:SIGMA``,
            ``box[:WIDTH]``, ``psf:FILE.npy``, see :mod:`magsr_tf.ops.degradation`;
            ``gaussian:auto`` estimates sigma from the LR image). Used by
            ``degrade`` and by the prior; the network keeps the sigma = 1 Gaussian.
        prior: ``"auto"`` (the default: the best measured method, chosen from the
            LR image alone, :mod:`magsr_tf.jobs.method_choice`), ``"none"`` (the
            network alone), or the physics prior of the reconstruction
            (``"exchange"``, ``"anisotropy"``; :mod:`magsr_tf.priors.image_prior`).
        anisotropy: K / J of the prior; None: chosen from the LR image.
        network: train the patch network. With a prior as well, the network's
            SR is the prior's starting point; without, the prior starts from
            aligned bicubic and no model is written. None: only for
            ``prior="none"`` (``auto`` measured no gain from it).
        noise: the LR noise sigma (of the [-1, 1] range); None: estimated from
            the LR image (:func:`magsr_tf.jobs.method_choice.noise_level`). It
            sets the prior's LR data weight (a likelihood weight).
        unresolved: with a prior, what an LR image whose domains the LR grid
            does not resolve gets: ``"interpolate"`` (the aligned bicubic
            up-sampling, in place of the prior's map) or ``"prior"`` (the
            prior anyway); :class:`magsr_tf.priors.image_prior.PriorConfig`.
    """

    images: tuple[Path, ...]
    ratio: int = 8
    patch: int = 16
    patches: int = 24000
    padding: str = "reflect"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 0.01
    seed: int = 0
    out_dir: Path | None = None
    degrade: bool = False
    crop: tuple[int, int] | None = None
    low_percentile: float = LOW_PERCENTILE
    high_percentile: float = HIGH_PERCENTILE
    value_range: tuple[float, float] | None = None
    schedule: str = "cosine"
    residual: bool | None = None
    augment: bool = True
    overwrite: bool = False
    degradation: str = "gaussian:1"
    prior: str = "auto"
    anisotropy: float | None = None
    network: bool | None = None
    unresolved: str = "interpolate"
    noise: float | None = None

    def __post_init__(self):
        from magsr_tf.ops.degradation import parse_degradation
        from magsr_tf.priors.image_prior import PRIORS, PriorConfig

        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        if self.prior not in ("auto", "none", *PRIORS):
            raise MagsrError(
                f"prior must be one of {('auto', 'none', *PRIORS)}. Received: prior={self.prior!r}"
            )
        if self.network is None:
            object.__setattr__(self, "network", self.prior == "none")
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise MagsrError(f"noise must be >= 0 or auto. Received: noise={self.noise}")
        if self.prior != "none":
            # checks the anisotropy and the unresolved policy
            kind = "anisotropy" if self.prior == "auto" else self.prior
            PriorConfig(kind, self.anisotropy, unresolved=self.unresolved)
        if not self.network and self.prior == "none":
            raise MagsrError("without the network (--no-network) give a --prior")
        if self.auto_sigma:
            if self.degrade:
                raise MagsrError(
                    "gaussian:auto estimates an unknown blur; --degrade needs it given"
                )
        else:
            deg = parse_degradation(self.degradation)
            if self.network and not deg.is_default:
                raise MagsrError(
                    "the network is trained with the sigma = 1 Gaussian only; use --no-network "
                    f"with another degradation. Received: degradation={self.degradation!r}"
                )
        if len(self.images) not in (1, 3):
            raise MagsrError(
                f"give one image (m_z) or three (m_x m_y m_z). Received: {len(self.images)} images"
            )
        if self.ratio not in RATIOS:
            raise MagsrError(f"ratio must be one of {RATIOS}. Received: ratio={self.ratio}")
        if self.padding not in ("periodic", "reflect"):
            raise MagsrError(
                f"padding must be 'periodic' or 'reflect'. Received: padding={self.padding!r}"
            )
        for name in ("patch", "patches", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise MagsrError(f"{name} must be positive. Received: {name}={getattr(self, name)}")
        if self.patch < MIN_PATCH:
            raise MagsrError(f"patch must be at least {MIN_PATCH}. Received: patch={self.patch}")
        if self.learning_rate <= 0:
            raise MagsrError(
                f"learning_rate must be positive. Received: learning_rate={self.learning_rate}"
            )
        if self.crop is not None and (len(self.crop) != 2 or min(self.crop) < 2):
            raise MagsrError(f"crop must be (height, width) >= 2. Received: crop={self.crop}")

    @property
    def auto_sigma(self) -> bool:
        """True for ``gaussian:auto`` (sigma estimated from the LR image)."""
        return self.degradation.replace(" ", "").lower() == "gaussian:auto"

    @property
    def use_residual(self) -> bool:
        """The effective ``residual`` setting (None resolved by the component count)."""
        if self.residual is not None:
            return self.residual
        return len(self.images) == 1

    @property
    def model_dir(self) -> Path:
        """Where the model, its SavedModel and the figures go."""
        if self.out_dir is not None:
            return Path(self.out_dir)
        return Path("saved_models") / f"{self.images[-1].stem}_x{self.ratio}"


@dataclass
class FitImageResult:
    """Outputs of :func:`fit_image`.

    Attributes:
        model_dir: folder holding ``model.keras``, the SavedModel ``1/`` and ``fit_image/``.
        sr: the SR map ``[H r, W r, C]``.
        files: written files by role ("sr_npy", "sr_png", "figure", "summary", ...).
        metrics: with ``degrade``: per method ("sr", "bicubic", "gaussian") MSE,
            PSNR (MAX = 2) and Pearson r against the native image.
        history: the training history (one dict per epoch).
        prior: with a prior: K, its choice, iterations, the LR sign-change
            share and ``method`` (``"bicubic"`` where the LR image did not
            resolve the domains and the aligned bicubic map stands in for the
            prior's; :class:`magsr_tf.priors.image_prior.PriorConfig`).
    """

    model_dir: Path
    sr: np.ndarray
    files: dict[str, Path] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    history: list = field(default_factory=list)
    prior: dict = field(default_factory=dict)


def central_crop(spins: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    """The central ``crop = (height, width)`` window of a ``[H, W, C]`` map."""
    h, w = spins.shape[:2]
    ch, cw = crop
    if ch > h or cw > w:
        raise MagsrError(f"crop {ch}x{cw} is larger than the image {h}x{w}. Received: crop={crop}")
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return spins[y0 : y0 + ch, x0 : x0 + cw]


def prepare_fit_data(
    config: FitImageConfig, meta: dict | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The LR map to fit on, and the native truth if ``config.degrade``.

    ``meta``, if given, receives ``"picture"``: the pixel size and units of the file
    (:class:`magsr_tf.io.formats.Picture`, without its values).

    Raises:
        MagsrError: unreadable images, a native size not divisible by the
            ratio (``degrade``), or an LR image smaller than a patch.
    """
    from magsr_tf.ops.downsample import downsample

    spins, picture = picture_spins(
        config.images, config.low_percentile, config.high_percentile, config.value_range
    )
    if meta is not None:
        meta["picture"] = picture
    if config.crop is not None:
        spins = central_crop(spins, config.crop)
    truth = None
    if config.degrade:
        h, w = spins.shape[:2]
        if h % config.ratio or w % config.ratio:
            raise MagsrError(
                f"the native image {h}x{w} is not divisible by the ratio; crop it (--crop) to "
                f"multiples of {config.ratio}. Received: ratio={config.ratio}"
            )
        truth = spins
        lr = downsample(truth, config.ratio, config.padding, degradation=config.degradation)
    else:
        lr = spins
    if min(lr.shape[:2]) < MIN_PATCH:
        raise MagsrError(
            f"the LR image {lr.shape[0]}x{lr.shape[1]} is too small; it needs at least "
            f"{MIN_PATCH}x{MIN_PATCH} pixels"
        )
    if config.network and min(lr.shape[:2]) < config.patch:
        raise MagsrError(
            f"the LR image {lr.shape[0]}x{lr.shape[1]} is smaller than one patch; use a smaller "
            f"--patch or a larger image. Received: patch={config.patch}"
        )
    return lr.astype(np.float32), truth


def _default_train(patches: np.ndarray, config: FitImageConfig, progress):
    from magsr_tf.nn.model import ModelConfig
    from magsr_tf.training.config import TrainConfig
    from magsr_tf.training.train import train_arrays

    train_config = TrainConfig(
        model=ModelConfig(
            ratio=config.ratio,
            channels=patches.shape[-1],
            padding=config.padding,
            residual=config.use_residual,
        ),
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        schedule=config.schedule,
        augment=config.augment,
        out_dir=None,
        seed=config.seed,
    )
    result = train_arrays(patches, train_config, progress=progress)
    return result.sr_model, list(result.history)


def score_against_truth(truth: np.ndarray, maps: dict[str, np.ndarray]) -> dict:
    """MSE, PSNR (MAX = 2) and Pearson r of each ``[H, W, C]`` map against the truth."""
    from magsr_tf.evaluation import metrics

    scores = {}
    for name, pred in maps.items():
        scores[name] = {
            "mse": float(metrics.mse(truth, pred)[0]),
            "psnr_db": float(metrics.psnr(truth, pred)[0]),
            "pearson_r": pearson(truth, pred),
        }
    return scores


def fit_image(
    config: FitImageConfig,
    progress: Callable[[dict], None] | None = None,
    train_fn: Callable | None = None,
) -> FitImageResult:
    """Trains an SR network on patches of one microscope image and super-resolves it.

    Args:
        config: the run.
        progress: training progress callback, passed to the trainer.
        train_fn: ``(patches, config, progress) -> (sr_model, history)``;
            default: :func:`magsr_tf.training.train.train_arrays` with a matching
            :class:`~magsr_tf.training.config.TrainConfig`.

    Returns:
        The SR map and the written files (see :class:`FitImageResult`).
    """
    from magsr_tf.inference.export import export_saved_model
    from magsr_tf.jobs.method_choice import interpolate, prior_step
    from magsr_tf.ops.degradation import estimate_sigma, parse_degradation
    from magsr_tf.ops.interpolation import upsample

    model_dir = config.model_dir
    keras_path = model_dir / "model.keras"
    if config.network:
        for existing in (keras_path, model_dir / "1"):
            if existing.exists() and not config.overwrite:
                raise MagsrError(f"{existing} already exists; use another --out or --overwrite")
    elif (model_dir / "fit_image" / "summary.json").exists() and not config.overwrite:
        raise MagsrError(
            f"{model_dir / 'fit_image'} already exists; use another --out or --overwrite"
        )
    meta: dict = {}
    lr, truth = prepare_fit_data(config, meta)
    if config.auto_sigma:
        sigma = estimate_sigma(lr[..., -1], config.ratio)
        logger.info("fit-image: blur sigma estimated from the LR image: %.3f", sigma)
        degradation = parse_degradation(f"gaussian:{max(sigma, 0.05):.4g}")
    else:
        degradation = parse_degradation(config.degradation)
    files: dict[str, Path] = {}
    history: list = []
    maps: dict[str, np.ndarray] = {}
    sr_net = None
    if config.network:
        rng = np.random.default_rng(config.seed)
        patches = random_patches(lr, config.patch, config.patches, rng)
        logger.info(
            "fit-image: %d patches %s from LR %s", len(patches), patches.shape[1:], lr.shape
        )
        sr_model, history = (train_fn or _default_train)(patches, config, progress)

        def run(batch):
            return sr_model(batch, training=False).numpy()

        sr_net = tiled_apply(run, lr[None], config.ratio, padding=config.padding)[0]
        maps["sr"] = sr_net
        model_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(keras_path) as tmp_keras:
            sr_model.save(tmp_keras)
        files["model"] = keras_path
        files["saved_model"] = export_saved_model(
            sr_model, model_dir, version=1, overwrite=config.overwrite
        )
    prior_info = {}
    if config.prior != "none":
        name, image, prior_info = prior_step(
            lr,
            config.ratio,
            degradation,
            config.prior,
            config.anisotropy,
            config.unresolved,
            init=sr_net,
            noise=config.noise,
            callback=progress,
        )
        maps[name] = image
    sr = list(maps.values())[-1]
    baselines = {
        method: upsample(lr, config.ratio, method, aligned=True, padding=config.padding)
        for method in ("gaussian", "bicubic")
    }
    baselines["lanczos"] = interpolate(lr, config.ratio, "lanczos")

    out = model_dir / "fit_image"
    files["sr_npy"] = write_npy(out / "sr.npy", sr)
    files["sr_png"] = write_png(out / "sr.png", sr)
    sr_files, pixel = write_sr_files(out, sr, lr, meta.get("picture"), config.ratio, config.degrade)
    files.update(sr_files)
    files["lr_png"] = write_png(out / "lr.png", lr)
    for method, hr in baselines.items():
        files[f"{method}_png"] = write_png(out / f"{method}.png", np.clip(hr, -1, 1))
    for name, image in maps.items():
        if name != "sr":
            stem = name.replace("+", "_").replace(" (", "_").replace(")", "")
            files[f"{stem}_png"] = write_png(out / f"{stem}.png", np.clip(image, -1, 1))
    kind = "anisotropy" if config.prior == "auto" else config.prior
    labels = {"sr": "SR network", "prior": f"{kind} prior"}
    labels["network+prior"] = f"network + {kind} prior"
    if prior_info.get("method") == "bicubic" and config.prior != "auto":
        # The LR image did not resolve the domains: the "prior" map is the bicubic one.
        labels["prior"] = labels["network+prior"] = "unresolved: bicubic"
    for name in ("prior", "network+prior", "lanczos", "bicubic"):
        labels[f"auto ({name})"] = f"default: {labels.get(name, name)}"
        labels[f"auto ({name}+lanczos)"] = f"default: mean of {labels.get(name)} and Lanczos-3"
    panels = {
        f"Gaussian x{config.ratio}": baselines["gaussian"],
        f"bicubic x{config.ratio}": baselines["bicubic"],
        **{f"{labels[name]} x{config.ratio}": image for name, image in maps.items()},
    }
    metrics = {}
    if truth is not None:
        panels["native (truth)"] = truth
        files["truth_png"] = write_png(out / "truth.png", truth)
        metrics = score_against_truth(truth, {**maps, **baselines})
    files["figure"] = comparison_figure(
        [{f"LR input (x1/{config.ratio})": lr, **panels}],
        out / "figure.png",
        title=", ".join(p.name for p in config.images),
        truth=truth,
        truth_label="native",
        origin="upper",
    )
    summary = {
        "config": {**asdict(config), "images": [str(p) for p in config.images]},
        "residual": config.use_residual,
        "degradation": degradation.to_config(),
        "prior": prior_info,
        "method": {"sr": list(maps)[-1], **prior_info.get("default", {})},
        "noise": prior_info.get("noise"),
        "lr_shape": list(lr.shape),
        **pixel,
        "sr_shape": list(sr.shape),
        "metrics": metrics,
        "history": history,
    }
    files["summary"] = write_json(out / "summary.json", summary)
    logger.info("fit-image wrote %s", model_dir)
    return FitImageResult(
        model_dir=model_dir,
        sr=sr,
        files=files,
        metrics=metrics,
        history=history,
        prior=prior_info,
    )
