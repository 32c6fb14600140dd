"""A trained SR model as a BioImage Model Zoo package (model RDF 0.5, ``rdf.yaml``).

deepImageJ (Fiji), ilastik and ``bioimageio.core`` open such a folder::

    DIR/
        rdf.yaml            # the model description, format_version 0.5
        README.md           # what the model does, its inputs, pre-processing, citation
        weights.zip         # the SavedModel MODEL/VERSION (tensorflow_saved_model_bundle)
        test_input.npy      # a raw picture [1, h, w, C] (values 0..255)
        test_output.npy     # the model's own SR of it, after the pre-processing below
        sample_input.tif, sample_output.tif   # the same as TIFF images, for people
        cover.png           # test input and output side by side

The input axes are ``b, y, x, c`` (the SavedModel's ``[batch, h, w, C]``); the output's
``y`` and ``x`` are ``ratio`` times longer and scaled by ``1 / ratio``, so a viewer
gives the SR the LR picture's pixel size divided by the ratio. The pre-processing is
the picture rule of :mod:`magsr_tf.io.pictures` (robust percentiles 0.5 and 99.5 onto
[-1, 1], clipped; a calibrated value range of a ``fit-image`` model instead), so a raw
microscope picture can be fed as it is. ``bioimageio test DIR/rdf.yaml`` checks it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.inference.export import latest_saved_model, read_metadata
from magsr_tf.io.pictures import HIGH_PERCENTILE, LOW_PERCENTILE
from magsr_tf.io.writers import apply_umask, write_bytes, write_text

logger = logging.getLogger(__name__)

FORMAT_VERSION = "0.5.4"
RDF_NAME = "rdf.yaml"
TEST_SIZE = 32
"""LR edge of the test input: the SR of a x8 model is 256 x 256."""
MIN_SIZE = 8
SIZE_STEP = 8
SCALE_EPS = 1e-6
"""``scale_range``'s eps (bioimageio.core's default): (x - lo) / (hi - lo + eps)."""
PAPER = {
    "text": (
        "Lee, D. B., Yoon, H. G., Park, S. M., Choi, J. W., Chen, G., Kwon, H. Y. & Won, C. "
        "Super-resolution of magnetic systems using deep learning. Sci. Rep. 13, 11526 (2023)."
    ),
    "doi": "10.1038/s41598-023-38335-y",
}
PAPER_AUTHORS = (
    "D. B. Lee",
    "H. G. Yoon",
    "S. M. Park",
    "J. W. Choi",
    "G. Chen",
    "H. Y. Kwon",
    "C. Won",
)
CHANNELS = {1: ["mz"], 3: ["mx", "my", "mz"]}


def _file_entry(path: Path) -> dict:
    """An RDF file reference: the name inside the package and its sha256."""
    return {"source": path.name, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_picture(
    channels: int,
    size: int = TEST_SIZE,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """A raw test picture ``[1, size, size, channels]`` float32: a smooth labyrinth-like
    spin map (unit vectors for 3 components) in 0..255, or in ``value_range``."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size)
    kk = np.hypot(*np.meshgrid(k, k, indexing="ij"))
    ring = np.exp(-(((kk - 0.12) / 0.04) ** 2))
    fields = [
        np.real(np.fft.ifft2(ring * np.fft.fft2(rng.normal(size=(size, size)))))
        for _ in range(channels)
    ]
    spins = np.stack([f / (np.abs(f).max() + 1e-12) for f in fields], axis=-1)
    if channels == 3:
        spins[..., 2] = np.tanh(3.0 * spins[..., 2])
        spins /= np.linalg.norm(spins, axis=-1, keepdims=True) + 1e-12
    lo, hi = value_range if value_range is not None else (0.0, 255.0)
    return (lo + (spins + 1.0) / 2.0 * (hi - lo)).astype(np.float32)[None]


def normalize_like_rdf(raw: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """The RDF's pre-processing in NumPy: per sample and channel, over y and x."""
    raw = np.asarray(raw, np.float64)
    if value_range is not None:
        lo, hi = (np.float64(v) for v in value_range)
        scaled = 2.0 * (raw - lo) / (hi - lo) - 1.0
    else:
        lo, hi = np.percentile(raw, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=(1, 2), keepdims=True)
        scaled = 2.0 * (raw - lo) / (hi - lo + SCALE_EPS) - 1.0
    return np.clip(scaled, -1.0, 1.0).astype(np.float32)


def _preprocessing(value_range: tuple[float, float] | None) -> list[dict]:
    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        steps = [
            {
                "id": "scale_linear",
                "kwargs": {"gain": 2 / (hi - lo), "offset": -1 - 2 * lo / (hi - lo)},
            }
        ]
    else:
        steps = [
            {
                "id": "scale_range",
                "kwargs": {
                    "axes": ["y", "x"],
                    "min_percentile": LOW_PERCENTILE,
                    "max_percentile": HIGH_PERCENTILE,
                    "eps": SCALE_EPS,
                },
            },
            {"id": "scale_linear", "kwargs": {"gain": 2.0, "offset": -1.0}},
        ]
    return [*steps, {"id": "clip", "kwargs": {"min": -1.0, "max": 1.0}}]


def _fit_value_range(model_dir: Path) -> tuple[float, float] | None:
    """The calibrated value range a ``fit-image`` model was trained with, if any."""
    summary = model_dir / "fit_image" / "summary.json"
    try:
        value_range = json.loads(summary.read_text())["config"].get("value_range")
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    return tuple(float(v) for v in value_range) if value_range else None


def _cover(path: Path, lr: np.ndarray, sr: np.ndarray, ratio: int) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from magsr_tf.io.writers import write_figure

    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    for ax, image, title in ((axes[0], lr, "LR input (m_z)"), (axes[1], sr, f"SR x{ratio}")):
        ax.imshow(image[..., -1], cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    write_figure(path, fig, dpi=100)


def _sample(path: Path, image: np.ndarray) -> None:
    """A ``[H, W, C]`` tensor as a float32 TIFF (grey, or RGB-ordered channels)."""
    import tifffile

    image = np.asarray(image, np.float32)
    if image.shape[-1] == 1:
        tifffile.imwrite(path, image[..., 0])
    else:
        tifffile.imwrite(path, image, photometric="rgb")


def _readme(name: str, info: dict, value_range) -> str:
    ratio, channels = info["ratio"], info["channels"]
    rule = (
        f"the calibrated value range {value_range} onto [-1, 1]"
        if value_range
        else f"percentiles {LOW_PERCENTILE} and {HIGH_PERCENTILE} of each channel onto -1 and +1"
    )
    return (
        f"# {name}: unsupervised super-resolution x{ratio} of magnetic spin textures\n\n"
        "A magsr-tf network (Lee et al., Sci. Rep. 13, 11526 (2023)), trained on low-resolution "
        "images only. It turns an LR picture of a spin texture (MOKE, MFM, PEEM contrast = m_z; "
        f"{channels} component(s): {', '.join(CHANNELS[channels])}) into an SR map {ratio} times "
        "larger along y and x whose Gaussian downsizing reproduces the input.\n\n"
        "## Input and output\n\n"
        f"- input `lr`: axes b, y, x, c (c = {channels}); any size from {MIN_SIZE} pixels in steps "
        f"of {SIZE_STEP}. Pre-processing: {rule}, clipped.\n"
        f"- output `sr`: axes b, y, x, c, {ratio} times the input's y and x, scaled by 1/{ratio} "
        "(the SR pixel is the input pixel divided by the ratio); values in [-1, 1].\n"
        f"- network padding: {info.get('padding')} (edges).\n\n"
        "## Citation\n\n"
        f"{PAPER['text']} https://doi.org/{PAPER['doi']}\n\n"
        "## Validation\n\n"
        "`test_output.npy` is this network's own SR of `test_input.npy` after the "
        "pre-processing; `bioimageio test rdf.yaml` reproduces it. How the method compares "
        "with interpolation on simulated and real microscope images is measured in the "
        "magsr-tf documentation (docs/real_images.md, the paper's Tables 1-2).\n\n"
        "Exported by `magsr-tf export MODEL --format bioimageio` (MIT licence).\n"
    )


def _rdf(name: str, info: dict, files: dict[str, Path], value_range, tf_version: str) -> dict:
    ratio, channels = int(info["ratio"]), int(info["channels"])
    space = [
        {"type": "space", "id": axis, "size": {"min": MIN_SIZE, "step": SIZE_STEP}, "scale": 1.0}
        for axis in ("y", "x")
    ]
    out_space = [
        {
            "type": "space",
            "id": axis,
            "size": {"tensor_id": "lr", "axis_id": axis},
            "scale": 1.0 / ratio,
        }
        for axis in ("y", "x")
    ]
    channel = {"type": "channel", "channel_names": CHANNELS[channels]}
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": f"magsr-tf {name} x{ratio}"[:128],
        "description": (
            f"Unsupervised x{ratio} super-resolution of magnetic spin-texture images "
            "(Lee et al., Sci. Rep. 2023), trained on low-resolution images only."
        ),
        "authors": [{"name": author} for author in PAPER_AUTHORS],
        "cite": [PAPER],
        "license": "MIT",
        "tags": ["super-resolution", "magnetism", "spin-textures", "microscopy", "tensorflow"],
        "documentation": files["readme"].name,
        "covers": [files["cover"].name],
        "inputs": [
            {
                "id": "lr",
                "description": "LR picture of the spin texture (raw values)",
                "axes": [{"type": "batch"}, *space, channel],
                "test_tensor": _file_entry(files["test_input"]),
                "sample_tensor": _file_entry(files["sample_input"]),
                "data": {"type": "float32"},
                "preprocessing": _preprocessing(value_range),
            }
        ],
        "outputs": [
            {
                "id": "sr",
                "description": f"SR spin map, {ratio} x the input along y and x, in [-1, 1]",
                "axes": [{"type": "batch"}, *out_space, channel],
                "test_tensor": _file_entry(files["test_output"]),
                "sample_tensor": _file_entry(files["sample_output"]),
                "data": {"type": "float32", "range": [-1.0, 1.0]},
            }
        ],
        "weights": {
            "tensorflow_saved_model_bundle": {
                **_file_entry(files["weights"]),
                "tensorflow_version": tf_version,
            }
        },
        "config": {
            "magsr_tf": {"ratio": ratio, "channels": channels, "padding": info.get("padding")}
        },
    }


def _dump_yaml(data: dict) -> str:
    try:
        import yaml
    except ImportError:  # JSON is YAML 1.2
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def validate_rdf(rdf: Path) -> None:
    """Validates ``rdf`` with bioimageio.spec (format and files, no model run).

    Raises:
        MagsrError: bioimageio.spec is missing, or the description is invalid.
    """
    try:
        from bioimageio.spec import InvalidDescr, load_description
    except ImportError as exc:
        raise MagsrError(
            "the bioimageio export needs bioimageio.core: install magsr-tf[bioimageio]"
        ) from exc
    descr = load_description(str(rdf), perform_io_checks=True)
    if isinstance(descr, InvalidDescr):
        summary = descr.validation_summary
        errors = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in summary.errors[:3])
        raise MagsrError(f"the BioImage Model Zoo description is invalid: {errors}")


def export_bioimageio(
    model_dir: Path,
    out_dir: Path,
    version: int | None = None,
    overwrite: bool = False,
    validate: bool = True,
) -> Path:
    """Writes the BioImage Model Zoo package of a model's SavedModel into ``out_dir``.

    The folder is built beside ``out_dir`` under a hidden name and renamed into place
    when complete; an existing ``out_dir`` is replaced only with ``overwrite``.

    Args:
        model_dir: the model folder (with ``VERSION/saved_model.pb``).
        out_dir: the package folder to write.
        version: SavedModel version (default: the newest).
        overwrite: replace an existing ``out_dir``.
        validate: check the description with bioimageio.spec before publishing it.

    Returns:
        The ``rdf.yaml`` written.

    Raises:
        MagsrError: no SavedModel, an existing ``out_dir`` without ``overwrite``, a
            missing bioimageio extra or an invalid description.
    """
    import tensorflow as tf

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise MagsrError(f"{out_dir} already exists; use another --out or --overwrite")
    if out_dir.resolve() == model_dir.resolve() or model_dir.resolve() in out_dir.resolve().parents:
        raise MagsrError(f"write the package outside the model folder {model_dir}")
    saved_model = latest_saved_model(model_dir, version)
    info = read_metadata(saved_model)
    if not info.get("ratio") or info.get("channels") not in CHANNELS:
        raise MagsrError(f"{saved_model} has no magsr-tf metadata (ratio, channels); re-export it")
    value_range = _fit_value_range(model_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".tmp-{out_dir.name}-"))
    try:
        files = {
            "weights": tmp / "weights.zip",
            "test_input": tmp / "test_input.npy",
            "test_output": tmp / "test_output.npy",
            "cover": tmp / "cover.png",
            "readme": tmp / "README.md",
            "sample_input": tmp / "sample_input.tif",
            "sample_output": tmp / "sample_output.tif",
        }
        with zipfile.ZipFile(files["weights"], "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(saved_model.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(saved_model).as_posix())
        raw = sample_picture(int(info["channels"]), value_range=value_range)
        loaded = tf.saved_model.load(str(saved_model))
        signature = loaded.signatures[info.get("signature", "serving_default")]
        lr = normalize_like_rdf(raw, value_range)
        sr = signature(**{info.get("input", "lr"): tf.constant(lr)})[info.get("output", "sr")]
        sr = np.asarray(sr, np.float32)
        np.save(files["test_input"], raw)
        np.save(files["test_output"], sr)
        _sample(files["sample_input"], raw[0])
        _sample(files["sample_output"], sr[0])
        _cover(files["cover"], lr[0], sr[0], int(info["ratio"]))
        write_text(files["readme"], _readme(model_dir.name, info, value_range))
        rdf = _rdf(model_dir.name, info, files, value_range, tf.__version__)
        write_bytes(tmp / RDF_NAME, _dump_yaml(rdf).encode("utf-8"))
        if validate:
            validate_rdf(tmp / RDF_NAME)
        apply_umask(tmp)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".old-{out_dir.name}-"))
            out_dir.rename(old / out_dir.name)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote the BioImage Model Zoo package %s", out_dir)
    return out_dir / RDF_NAME
