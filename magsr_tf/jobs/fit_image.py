"""Microscope images: reading, spin normalization, patches, tiled inference, fit-image.

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

import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf import RATIOS
from magsr_tf.errors import MagsrError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
TILE = 96
"""LR tile edge of :func:`tiled_apply`: about 0.1 GB of activations at x8."""
TILE_MARGIN = 8
"""LR context around a tile; the network's receptive field reaches < 6 LR pixels
(4 expander convs at LR scale plus < 2 LR pixels of the up-sampling convs)."""
MIN_PATCH = 4


def is_image_path(path: str | Path) -> bool:
    """True for file names that :func:`read_image` reads as pictures."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> np.ndarray:
    """Reads a grayscale picture (PNG, TIFF, JPEG, BMP) as float64 ``[H, W]``.

    8-/16-bit and float TIFFs keep their values; colour images are reduced to
    luma (false-colour palettes of scanning-probe software rise monotonically
    in R, G and B, so luma keeps their order). An alpha channel is ignored
    when every pixel is opaque.

    Raises:
        MagsrError: missing, unreadable or not a picture, or transparent pixels.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MagsrError(f"no image file {path}")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "P" and "transparency" in img.info:
                img = img.convert("RGBA")
            if "A" in img.getbands():
                # Transparent pixels have no measured value: refuse them rather
                # than read whatever colour lies under the alpha channel.
                if img.getchannel("A").getextrema()[0] < 255:
                    raise MagsrError(
                        f"{path} has transparent pixels (an alpha channel below 255); "
                        "flatten or crop it first"
                    )
                logger.info("%s has an opaque alpha channel: ignoring it", path)
            if img.mode in ("RGB", "RGBA", "P", "LA", "PA", "CMYK", "YCbCr"):
                logger.info("%s is colour (%s): using its luma", path, img.mode)
                img = img.convert("L")
            array = np.asarray(img, dtype=np.float64)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MagsrError(f"cannot read {path} as an image: {exc}") from exc
    if array.ndim != 2 or min(array.shape) < 2:
        raise MagsrError(f"{path} is not a 2-D grayscale image. Received: shape={array.shape}")
    if not np.all(np.isfinite(array)):
        raise MagsrError(f"{path} holds non-finite pixel values")
    return array


def normalize_component(
    image: np.ndarray,
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Maps an image linearly onto a spin component in [-1, 1].

    By default the ``low`` and ``high`` percentiles go to -1 and +1 and the
    rest is clipped, so that a few outlier pixels (dust, scan glitches) do not
    squeeze the domain contrast. A calibrated ``value_range = (v_minus, v_plus)``
    (the pixel values of m = -1 and m = +1) replaces the percentiles.

    Raises:
        MagsrError: a flat image (no contrast to map) or a bad range.
    """
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise MagsrError(
                f"value range must be (low, high) with low < high. Received: {value_range}"
            )
    else:
        if not 0.0 <= low < high <= 100.0:
            raise MagsrError(f"need 0 <= low < high <= 100. Received: low={low}, high={high}")
        lo, hi = np.percentile(image, [low, high])
    if hi <= lo:
        raise MagsrError(f"the image has no contrast (flat between percentiles {low}..{high})")
    return np.clip(2.0 * (image - lo) / (hi - lo) - 1.0, -1.0, 1.0).astype(np.float32)


def images_to_spins(
    paths: Sequence[str | Path],
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """One image (m_z) or three images (m_x, m_y, m_z) as a ``[H, W, C]`` spin map.

    Raises:
        MagsrError: not 1 or 3 images, unreadable files, or differing sizes.
    """
    if len(paths) not in (1, 3):
        raise MagsrError(
            f"give one image (m_z) or three (m_x m_y m_z). Received: {len(paths)} images"
        )
    images = [read_image(p) for p in paths]
    shapes = {img.shape for img in images}
    if len(shapes) != 1:
        raise MagsrError(f"the x, y, z images differ in size. Received: shapes={sorted(shapes)}")
    return np.stack([normalize_component(img, low, high, value_range) for img in images], axis=-1)


def spins_to_uint8(spins: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` in [-1, 1] to 8 bits: grayscale for C = 1, RGB = (m + 1) / 2 for C = 3."""
    spins = np.asarray(spins)
    pixels = np.round((np.clip(spins, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _atomic_target(path: Path):
    """A temporary file name in ``path``'s folder (renamed onto ``path`` when complete)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.stem}-", suffix=path.suffix)
    os.close(fd)
    return Path(tmp)


def _commit(tmp: Path, path: Path) -> Path:
    os.replace(tmp, path)
    return path


def save_png(spins: np.ndarray, path: Path) -> Path:
    """Writes a ``[H, W, C]`` spin map as a PNG (see :func:`spins_to_uint8`)."""
    from PIL import Image

    path = Path(path)
    tmp = _atomic_target(path)
    try:
        Image.fromarray(spins_to_uint8(spins)).save(tmp, format="PNG")
        return _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npy(array: np.ndarray, path: Path) -> Path:
    """Writes an array atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, np.asarray(array))
        return _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_json(data: dict, path: Path) -> Path:
    """Writes JSON atomically."""
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str))
        return _commit(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def random_patches(
    image: np.ndarray, patch: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Random square crops of a non-periodic ``[H, W, C]`` map.

    Crops never wrap around: a microscope image has edges. (Rotations and spin
    flips are applied later, per batch, by the trainer's augmentation.)

    Args:
        image: the LR spin map.
        patch: crop edge in pixels.
        count: number of crops.
        rng: the random generator of the crop positions.

    Returns:
        ``[count, patch, patch, C]`` float32.
    """
    image = np.asarray(image, dtype=np.float32)
    h, w, _ = image.shape
    if patch < MIN_PATCH or patch > min(h, w):
        raise MagsrError(
            f"patch must be between {MIN_PATCH} and the image size {h}x{w}. Received: patch={patch}"
        )
    if count < 1:
        raise MagsrError(f"need at least one patch. Received: patches={count}")
    ys = rng.integers(0, h - patch + 1, size=count)
    xs = rng.integers(0, w - patch + 1, size=count)
    rows = ys[:, None] + np.arange(patch)[None, :]
    cols = xs[:, None] + np.arange(patch)[None, :]
    return np.ascontiguousarray(image[rows[:, :, None], cols[:, None, :]])


def tiled_apply(
    fn: Callable[[np.ndarray], np.ndarray],
    lr: np.ndarray,
    ratio: int,
    tile: int = TILE,
    margin: int = TILE_MARGIN,
    padding: str = "reflect",
) -> np.ndarray:
    """Applies an SR function to large maps tile by tile, with the result of one pass.

    Each LR tile is cut with ``margin`` pixels of context and only its centre
    is kept, so the output equals ``fn(lr)`` as long as ``margin`` covers the
    network's receptive field. At the image border: for ``"reflect"`` the tile
    ends at the border and the network's own reflect padding applies there as
    in the whole-image pass; for ``"periodic"`` the map is wrapped around.

    Args:
        fn: ``[n, h, w, C] -> [n, h r, w r, C]``.
        lr: ``[n, h, w, C]`` float32.
        ratio: r.
        tile: LR tile edge.
        margin: LR context pixels on each side.
        padding: the network's padding mode.
    """
    lr = np.asarray(lr, dtype=np.float32)
    n, h, w, c = lr.shape
    if h <= tile + 2 * margin and w <= tile + 2 * margin:
        return np.asarray(fn(lr), dtype=np.float32)
    periodic = padding == "periodic"
    if periodic:
        source = np.pad(lr, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="wrap")
    else:
        source = lr
    r = ratio
    out = np.empty((n, h * r, w * r, c), dtype=np.float32)
    for y0 in range(0, h, tile):
        y1 = min(h, y0 + tile)
        for x0 in range(0, w, tile):
            x1 = min(w, x0 + tile)
            if periodic:  # padded coordinates: the tile starts at y0 + margin
                ys, ye, xs, xe = y0, y1 + 2 * margin, x0, x1 + 2 * margin
                top, left = margin, margin
            else:
                ys, ye = max(0, y0 - margin), min(h, y1 + margin)
                xs, xe = max(0, x0 - margin), min(w, x1 + margin)
                top, left = y0 - ys, x0 - xs
            piece = np.asarray(fn(source[:, ys:ye, xs:xe]), dtype=np.float32)
            expected = (n, (ye - ys) * r, (xe - xs) * r, c)
            if piece.shape != expected:
                raise MagsrError(
                    f"the model returned shape {piece.shape} for a tile; expected {expected} "
                    f"(ratio {r})"
                )
            out[:, y0 * r : y1 * r, x0 * r : x1 * r] = piece[
                :, top * r : (top + y1 - y0) * r, left * r : (left + x1 - x0) * r
            ]
    return out


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two maps (all pixels and components pooled)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def comparison_figure(
    lr: np.ndarray,
    panels: dict[str, np.ndarray],
    path: Path,
    ratio: int,
    title: str = "",
    truth: np.ndarray | None = None,
) -> Path:
    """A figure like Lee et al.'s Fig. 7: LR input, then each up-sampled map side by side.

    Three-component maps show m_z. With ``truth``, a second row shows each
    map minus the truth (red above, blue below, +-0.5 full scale). Written
    atomically as PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {f"LR input (x1/{ratio})": lr, **panels}
    rows = 1 if truth is None else 2
    fig, axes = plt.subplots(
        rows, len(shown), figsize=(3.2 * len(shown), 3.6 * rows), squeeze=False
    )
    for ax, (label, spins) in zip(axes[0], shown.items(), strict=True):
        ax.imshow(np.asarray(spins)[..., -1], cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=9)
    if truth is not None:
        axes[1, 0].set_axis_off()
        for ax, (label, spins) in zip(axes[1, 1:], panels.items(), strict=True):
            if spins is truth:
                ax.set_axis_off()
                continue
            diff = np.asarray(spins)[..., -1] - np.asarray(truth)[..., -1]
            ax.imshow(diff, cmap="RdBu_r", vmin=-0.5, vmax=0.5, interpolation="nearest")
            ax.set_title(f"{label} - native", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    tmp = _atomic_target(path)
    try:
        fig.savefig(tmp, dpi=120, format="png")
        return _commit(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


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
        prior: ``"none"``, or the physics prior of the reconstruction
            (``"exchange"``, ``"anisotropy"``; :mod:`magsr_tf.priors.image_prior`).
        anisotropy: K / J of the prior; None: chosen from the LR image.
        network: train the patch network. With a prior as well, the network's
            SR is the prior's starting point; without, the prior starts from
            aligned bicubic and no model is written.
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
    prior: str = "none"
    anisotropy: float | None = None
    network: bool = True
    unresolved: str = "interpolate"

    def __post_init__(self):
        from magsr_tf.ops.degradation import parse_degradation
        from magsr_tf.priors.image_prior import PRIORS, PriorConfig

        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        if self.prior not in ("none", *PRIORS):
            raise MagsrError(
                f"prior must be one of {('none', *PRIORS)}. Received: prior={self.prior!r}"
            )
        if self.prior != "none":
            # checks the anisotropy and the unresolved policy
            PriorConfig(self.prior, self.anisotropy, unresolved=self.unresolved)
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


def prepare_fit_data(config: FitImageConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The LR map to fit on, and the native truth if ``config.degrade``.

    Raises:
        MagsrError: unreadable images, a native size not divisible by the
            ratio (``degrade``), or an LR image smaller than a patch.
    """
    from magsr_tf.ops.downsample import downsample

    spins = images_to_spins(
        config.images, config.low_percentile, config.high_percentile, config.value_range
    )
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
    from magsr_tf.training.train import TrainConfig, train_arrays

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
            :class:`~magsr_tf.training.train.TrainConfig`.

    Returns:
        The SR map and the written files (see :class:`FitImageResult`).
    """
    from magsr_tf.inference.export import export_saved_model
    from magsr_tf.ops.degradation import estimate_sigma, parse_degradation
    from magsr_tf.ops.interpolation import upsample
    from magsr_tf.priors.image_prior import PriorConfig, reconstruct

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
    lr, truth = prepare_fit_data(config)
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
        tmp_keras = _atomic_target(keras_path.with_suffix(".keras"))
        try:
            sr_model.save(tmp_keras)
            _commit(tmp_keras, keras_path)
        finally:
            tmp_keras.unlink(missing_ok=True)
        files["model"] = keras_path
        files["saved_model"] = export_saved_model(
            sr_model, model_dir, version=1, overwrite=config.overwrite
        )
    prior_info = {}
    if config.prior != "none":
        result = reconstruct(
            lr,
            config.ratio,
            degradation,
            PriorConfig(config.prior, config.anisotropy, unresolved=config.unresolved),
            init=sr_net,
            callback=progress,
        )
        maps["network+prior" if config.network else "prior"] = result.image
        prior_info = {
            "prior": config.prior,
            "anisotropy": result.anisotropy,
            "choice": result.choice,
            "iterations": result.iterations,
            "seconds": result.seconds,
            "lr_rms": result.lr_rms,
            "lr_sign_changes": result.sign_changes,
            "method": result.method,
            "start": "network" if config.network else "bicubic",
        }
    sr = list(maps.values())[-1]
    baselines = {
        method: upsample(lr, config.ratio, method, aligned=True, padding=config.padding)
        for method in ("gaussian", "bicubic")
    }

    out = model_dir / "fit_image"
    files["sr_npy"] = save_npy(sr, out / "sr.npy")
    files["sr_png"] = save_png(sr, out / "sr.png")
    files["lr_png"] = save_png(lr, out / "lr.png")
    for method, hr in baselines.items():
        files[f"{method}_png"] = save_png(np.clip(hr, -1, 1), out / f"{method}.png")
    for name, image in maps.items():
        if name != "sr":
            files[f"{name.replace('+', '_')}_png"] = save_png(
                np.clip(image, -1, 1), out / f"{name.replace('+', '_')}.png"
            )
    labels = {"sr": "SR network", "prior": f"{config.prior} prior"}
    labels["network+prior"] = f"network + {config.prior} prior"
    if prior_info.get("method") == "bicubic":
        # The LR image did not resolve the domains: the "prior" map is the bicubic one.
        labels["prior"] = labels["network+prior"] = "unresolved: bicubic"
    panels = {
        f"Gaussian x{config.ratio}": baselines["gaussian"],
        f"bicubic x{config.ratio}": baselines["bicubic"],
        **{f"{labels[name]} x{config.ratio}": image for name, image in maps.items()},
    }
    metrics = {}
    if truth is not None:
        panels["native (truth)"] = truth
        files["truth_png"] = save_png(truth, out / "truth.png")
        metrics = score_against_truth(truth, {**maps, **baselines})
    files["figure"] = comparison_figure(
        lr,
        panels,
        out / "figure.png",
        config.ratio,
        title=", ".join(p.name for p in config.images),
        truth=truth,
    )
    summary = {
        "config": {**asdict(config), "images": [str(p) for p in config.images]},
        "residual": config.use_residual,
        "degradation": degradation.to_config(),
        "prior": prior_info,
        "lr_shape": list(lr.shape),
        "sr_shape": list(sr.shape),
        "metrics": metrics,
        "history": history,
    }
    files["summary"] = save_json(summary, out / "summary.json")
    logger.info("fit-image wrote %s", model_dir)
    return FitImageResult(
        model_dir=model_dir,
        sr=sr,
        files=files,
        metrics=metrics,
        history=history,
        prior=prior_info,
    )
