"""Microscope files with a pixel size: TIFF, Gwyddion ``.gwy``, DigitalMicrograph, Igor.

Readers return the raw values (instrument units: a phase in degrees, a height in m,
counts) with the pixel size and its unit where the file has them;
:mod:`magsr_tf.io.pictures` maps the values onto [-1, 1] by its one rule.

- TIFF (``tifffile``, in the plain install): 8/16-bit, float32; pages or channels
  are components (1 or 3); the pixel size of ImageJ (resolution + ``unit``) and OME
  (``PhysicalSizeX``) files, or a resolution in pixels per centimetre. A plain
  TIFF's dpi (per inch) is a print size and is ignored.
- ``.gwy`` (``gwyfile``): the first data field, ``xreal / xres`` with ``si_unit_xy``.
- ``.dm3`` / ``.dm4`` (``rosettasciio``) and ``.ibw`` (``igor2``): the first 2-D image
  (an Igor wave's first layer) and its axis scale and units.

The optional readers are the ``formats`` extra (``pip install magsr-tf[formats]``).
Writers: the SR as a float32 TIFF with ImageJ resolution and unit, and as ``.gwy``;
both atomic. A figure of the LR and SR maps with a scale bar completes them.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.writers import atomic_path, write_figure

logger = logging.getLogger(__name__)

FORMAT_SUFFIXES = {
    ".tif": "tiff",
    ".tiff": "tiff",
    ".gwy": "gwy",
    ".dm3": "dm",
    ".dm4": "dm",
    ".ibw": "ibw",
}
"""File suffixes read here (Pillow reads the other pictures)."""
EXTRA = "install magsr-tf[formats]"
METRES = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "nm": 1e-9, "pm": 1e-12, "A": 1e-10}
"""Length units understood, in metres (``um`` is µm, ``A`` is Å)."""
_ALIASES = {
    **dict.fromkeys(
        ("µm", "μm", "\\u00b5m", "micron", "microns", "micrometer", "micrometre"), "um"
    ),
    **dict.fromkeys(("nanometer", "nanometre"), "nm"),
    **dict.fromkeys(("å", "angstrom", "angstroms"), "A"),
    **dict.fromkeys(("meter", "metre", "meters", "metres"), "m"),
    "millimeter": "mm",
}
_IMAGEJ_UNITS = {"um": "micron", "A": "angstrom"}


@dataclass
class Picture:
    """Raw values of one file with its pixel size.

    Attributes:
        values: ``[H, W, C]`` float64 (C = 1 or 3 components), instrument units.
        pixel_size: ``(y, x)`` size of one pixel in ``unit``, or None if unknown.
        unit: length unit of ``pixel_size`` (``m``, ``um``, ``nm``, ...).
        value_unit: unit of the values where the file names one (``deg``, ``m``, ...).
        kind: ``"tiff"``, ``"gwy"``, ``"dm"``, ``"ibw"`` or ``"picture"`` (Pillow).
        source: the file.
        extra: reader details (the ``.gwy`` data field's name).
    """

    values: np.ndarray
    pixel_size: tuple[float, float] | None = None
    unit: str | None = None
    value_unit: str | None = None
    kind: str = "picture"
    source: str = ""
    extra: dict = field(default_factory=dict)


def is_format_path(path: str | Path) -> bool:
    """True for the suffixes of :data:`FORMAT_SUFFIXES`."""
    return Path(path).suffix.lower() in FORMAT_SUFFIXES


def canonical_unit(unit: str | None) -> str | None:
    """``µm``, ``micron``, ``um`` -> ``um`` and so on; other strings kept, empty -> None."""
    if unit is None:
        return None
    text = str(unit).strip()
    if not text:
        return None
    key = text.lower()
    if key in _ALIASES:
        return _ALIASES[key]
    return text if text in METRES else (key if key in METRES else text)


def nice_length(size: float, unit: str) -> tuple[float, str]:
    """A length in the unit among nm, um, mm, m that gives 0.1 <= value < 1000."""
    if unit not in METRES or not size > 0:
        return size, unit
    metres = size * METRES[unit]
    for name in ("nm", "um", "mm", "m"):
        value = metres / METRES[name]
        if value < 1000:
            return value, name
    return metres, "m"


def check_picture(values: np.ndarray, path: str | Path) -> np.ndarray:
    """One-line refusals of pictures that hold no map: fewer than 2 x 2 pixels, non-finite
    or constant values. Returns ``values``."""
    h, w = values.shape[:2]
    if min(h, w) < 2:
        raise MagsrError(f"{path} is {h}x{w} pixels; a picture needs at least 2x2")
    if not np.all(np.isfinite(values)):
        raise MagsrError(f"{path} holds non-finite pixel values")
    if float(values.max()) == float(values.min()):
        raise MagsrError(
            f"{path} is constant (every pixel is {float(values.flat[0]):g}): "
            "no contrast to map onto a spin component"
        )
    return values


def colour_to_grey(rgb: np.ndarray, path: str | Path) -> np.ndarray:
    """The stated rule for colour pictures ``[H, W, 3]``: equal channels are the grey
    value; otherwise a one-line refusal saying how to convert."""
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        logger.info("%s is RGB with equal channels: reading it as grey", path)
        return rgb[..., 0]
    raise MagsrError(
        f"{path} is a colour (RGB) picture whose channels differ; a spin component needs one "
        "value per pixel: save the measured channel as a greyscale or 16-bit/float TIFF "
        "(Fiji: Image > Type > 32-bit; Python: Image.open(p).convert('L')), or give one "
        "picture per component"
    )


def _missing(module: str, path) -> MagsrError:
    return MagsrError(f"reading {Path(path).suffix} files needs {module}: {EXTRA}")


def _bad(path, exc: Exception) -> MagsrError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return MagsrError(f"cannot read {path} as {Path(path).suffix.lstrip('.')}: {reason}")


def _components(array: np.ndarray, path, what: str) -> np.ndarray:
    """``[H, W]`` or ``[H, W, n]`` -> ``[H, W, C]`` with C = 1 or 3."""
    if array.ndim == 2:
        return array[..., None]
    if array.ndim == 3 and array.shape[-1] in (1, 3):
        return array
    raise MagsrError(
        f"{path} has {array.shape[-1] if array.ndim == 3 else array.shape} {what}; give 1 "
        "(m_z) or 3 (m_x, m_y, m_z) components"
    )


def _check_pixels(shape, path, max_pixels: int | None) -> None:
    pixels = int(np.prod(shape, dtype=np.int64))
    if max_pixels is not None and pixels > max_pixels:
        raise MagsrError(
            f"{path} has {pixels:,} values; at most {max_pixels:,} fit in the memory limit"
        )


def _tiff_pixel_size(tif, page) -> tuple[tuple[float, float] | None, str | None]:
    if tif.is_ome and tif.ome_metadata:
        root = ElementTree.fromstring(tif.ome_metadata)
        for node in root.iter():
            if node.tag.endswith("Pixels") and node.get("PhysicalSizeX"):
                x = float(node.get("PhysicalSizeX"))
                y = float(node.get("PhysicalSizeY", x))
                return (y, x), canonical_unit(node.get("PhysicalSizeXUnit", "µm"))
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        tags = page.tags
        if "XResolution" in tags:
            num, den = tags["XResolution"].value
            ynum, yden = tags["YResolution"].value if "YResolution" in tags else (num, den)
            unit = canonical_unit(meta.get("unit"))
            if num > 0 and ynum > 0 and unit and unit not in ("pixel", "inch"):
                return (yden / ynum, den / num), unit
    tags = page.tags
    if (
        "ResolutionUnit" in tags
        and int(tags["ResolutionUnit"].value) == 3
        and "XResolution" in tags
    ):
        # pixels per centimetre: a calibration (an inch is the print size of editors)
        num, den = tags["XResolution"].value
        ynum, yden = tags["YResolution"].value if "YResolution" in tags else (num, den)
        if num > 0 and ynum > 0:
            return (1e4 * yden / ynum, 1e4 * den / num), "um"
    return None, None


def read_tiff(path: Path, max_pixels: int | None = None) -> Picture:
    """A TIFF's first series: pages or channels as components, with its pixel size."""
    import tifffile

    quiet = logging.getLogger("tifffile")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a corrupt file is one MagsrError line, not warnings
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series or not tif.pages:
                raise MagsrError(f"cannot read {path} as tif: it holds no image")
            series = tif.series[0]
            page = series.pages[0] if series.pages else tif.pages[0]
            _check_pixels(series.shape, path, max_pixels)
            axes = series.axes
            data = np.asarray(series.asarray())
            pixel_size, unit = _tiff_pixel_size(tif, page)
            photometric = getattr(page.photometric, "name", str(page.photometric))
    except MagsrError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is one line
        raise _bad(path, exc) from exc
    finally:
        quiet.setLevel(level)
    keep = [i for i, a in enumerate(axes) if a in "YX" or data.shape[i] != 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    if data.dtype.kind not in "fiub":
        raise MagsrError(f"{path} is not a numeric image. Received: dtype={data.dtype}")
    data = data.astype(np.float64)
    if axes == "YXS" and photometric == "RGB":
        data = colour_to_grey(data[..., :3], path)
        axes = "YX"
    others = [a for a in axes if a not in "YX"]
    if len(others) > 1 or "Y" not in axes or "X" not in axes:
        raise MagsrError(f"{path} has axes {axes}; expected one image (YX) or 1/3 components")
    if others:
        data = np.moveaxis(data, axes.index(others[0]), -1)
        axes = axes.replace(others[0], "") + others[0]
    if axes.startswith("XY"):
        data = np.swapaxes(data, 0, 1)
    values = _components(data, path, "pages or channels")
    return Picture(values, pixel_size, unit, None, "tiff", str(path))


def read_gwy(path: Path, max_pixels: int | None = None) -> Picture:
    """The first data field of a Gwyddion file, with ``xreal / xres`` and its units."""
    try:
        import gwyfile
        from gwyfile.util import get_datafields
    except ImportError as exc:
        raise _missing("gwyfile", path) from exc
    try:
        fields = get_datafields(gwyfile.load(str(path)))
    except Exception as exc:  # noqa: BLE001
        raise _bad(path, exc) from exc
    if not fields:
        raise MagsrError(f"{path} holds no data field")
    name, df = next(iter(fields.items()))
    data = np.asarray(df.data, np.float64)
    _check_pixels(data.shape, path, max_pixels)
    h, w = data.shape
    xy = df.get("si_unit_xy")
    z = df.get("si_unit_z")
    unit = canonical_unit(xy.get("unitstr", "") if xy is not None else "") or "m"
    size = (float(df["yreal"]) / h, float(df["xreal"]) / w)
    value_unit = (z.get("unitstr") if z is not None else None) or None
    if len(fields) > 1:
        logger.info("%s: reading the data field %r of %d", path, name, len(fields))
    return Picture(data[..., None], size, unit, value_unit, "gwy", str(path), {"field": name})


def read_dm(path: Path, max_pixels: int | None = None) -> Picture:
    """The first 2-D image of a DigitalMicrograph file and its axis scales (rosettasciio)."""
    try:
        from rsciio.digitalmicrograph import file_reader
    except ImportError as exc:
        raise _missing("rosettasciio", path) from exc
    try:
        signals = file_reader(str(path))
    except Exception as exc:  # noqa: BLE001
        raise _bad(path, exc) from exc
    images = [s for s in signals if np.ndim(s.get("data")) == 2]
    if not images:
        raise MagsrError(f"{path} holds no 2-D image")
    signal = images[0]
    data = np.asarray(signal["data"], np.float64)
    _check_pixels(data.shape, path, max_pixels)
    axes = signal.get("axes") or [{}, {}]
    unit = canonical_unit(axes[-1].get("units"))
    size = (float(axes[0].get("scale", 1.0)), float(axes[-1].get("scale", 1.0)))
    quantity = signal.get("metadata", {}).get("Signal", {}).get("quantity")
    return Picture(data[..., None], size if unit else None, unit, quantity, "dm", str(path))


def _igor_text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, (np.ndarray, list, tuple)):  # igor2 gives char arrays
        items = np.asarray(value, dtype=object).ravel().tolist()
        raw = b"".join(i if isinstance(i, bytes) else bytes([int(i)]) for i in items)
        return raw.split(b"\x00")[0].decode("latin-1").strip()
    return str(value or "").strip()


def read_ibw(path: Path, max_pixels: int | None = None) -> Picture:
    """The first layer of an Igor binary wave (rows = x, as Igor stores images)."""
    try:
        from igor2 import binarywave
    except ImportError as exc:
        raise _missing("igor2", path) from exc
    try:
        wave = binarywave.load(str(path))["wave"]
    except Exception as exc:  # noqa: BLE001
        raise _bad(path, exc) from exc
    data = np.asarray(wave["wData"])
    if data.ndim not in (2, 3) or data.dtype.kind not in "fiu":
        raise MagsrError(f"{path} is not an image wave. Received: shape={data.shape}")
    if data.ndim == 3:
        logger.info("%s has %d layers: reading the first", path, data.shape[2])
        data = data[..., 0]
    _check_pixels(data.shape, path, max_pixels)
    header = wave.get("wave_header", {})
    steps = np.asarray(header.get("sfA", [1.0, 1.0]), np.float64)
    units = header.get("dimUnits")
    unit = canonical_unit(_igor_text(units[0]) if units is not None and len(units) else "")
    value_unit = _igor_text(header.get("dataUnits", b"")) or None
    size = (float(steps[1]), float(steps[0]))
    return Picture(
        data.T.astype(np.float64)[..., None],
        size if unit else None,
        unit,
        value_unit,
        "ibw",
        str(path),
    )


_READERS = {"tiff": read_tiff, "gwy": read_gwy, "dm": read_dm, "ibw": read_ibw}


def read_format(path: str | Path, max_pixels: int | None = None) -> Picture:
    """Reads a file of :data:`FORMAT_SUFFIXES` as a checked :class:`Picture`.

    Raises:
        MagsrError: a missing file or optional reader (one line: "install
            magsr-tf[formats]"), a corrupt file, a colour picture with differing
            channels, other than 1 or 3 components, fewer than 2 x 2 pixels, or
            constant or non-finite values.
    """
    path = Path(path)
    if not path.is_file():
        raise MagsrError(f"no image file {path}")
    kind = FORMAT_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise MagsrError(f"unknown file type {path.suffix!r}: use {sorted(FORMAT_SUFFIXES)}")
    picture = _READERS[kind](path, max_pixels)
    check_picture(picture.values, path)
    if picture.pixel_size is not None and not all(
        math.isfinite(s) and s > 0 for s in picture.pixel_size
    ):
        picture.pixel_size = picture.unit = None
    elif picture.pixel_size is not None and picture.unit == "m":  # SI metres: 2e-8 m -> 20 nm
        shown = nice_length(picture.pixel_size[1], "m")[1]
        factor = METRES["m"] / METRES[shown]
        picture.pixel_size = tuple(float(f"{v * factor:.12g}") for v in picture.pixel_size)
        picture.unit = shown
    return picture


def write_tiff(
    path: str | Path,
    spins: np.ndarray,
    pixel_size: float | None = None,
    unit: str | None = None,
) -> Path:
    """Writes a ``[H, W, C]`` map as a float32 ImageJ TIFF atomically (C as channels),
    with resolution ``1 / pixel_size`` per ``unit`` when the pixel size is known."""
    import tifffile

    spins = np.asarray(spins, np.float32)
    data = spins[..., 0] if spins.shape[-1] == 1 else np.moveaxis(spins, -1, 0)
    metadata = {"axes": "YX" if spins.shape[-1] == 1 else "CYX"}
    kwargs = {}
    if pixel_size:
        unit = canonical_unit(unit)
        label = _IMAGEJ_UNITS.get(unit, unit or "pixel")
        # ImageJ's description is ASCII: a unit it cannot hold is written in metres.
        if not label.isascii():
            raise MagsrError(f"{path}: the pixel unit {unit!r} cannot be written to a TIFF")
        metadata["unit"] = label
        kwargs["resolution"] = (1.0 / pixel_size, 1.0 / pixel_size)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=metadata, **kwargs)
    return Path(path)


def write_gwy(
    path: str | Path, spins: np.ndarray, pixel_size: float, unit: str, title: str = "SR"
) -> Path:
    """Writes the last component of a ``[H, W, C]`` map as a Gwyddion data field atomically
    (``xreal`` / ``yreal`` in metres, values unitless in [-1, 1])."""
    try:
        from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit
    except ImportError as exc:
        raise _missing("gwyfile", path) from exc
    data = np.ascontiguousarray(np.asarray(spins, np.float64)[..., -1])
    h, w = data.shape
    scale = METRES.get(unit, 1.0)
    df = GwyDataField(
        data,
        xreal=w * pixel_size * scale,
        yreal=h * pixel_size * scale,
        si_unit_xy=GwySIUnit(unitstr="m" if unit in METRES else unit),
        si_unit_z=GwySIUnit(unitstr=""),
    )
    container = GwyContainer({"/0/data": df, "/0/data/title": title})
    with atomic_path(path) as tmp:
        container.tofile(str(tmp))
    return Path(path)


def _bar_length(width: float) -> float:
    """A round length (1, 2 or 5 x 10^k) near a fifth of ``width``."""
    target = width / 5
    power = 10 ** math.floor(math.log10(target))
    return max(m * power for m in (1, 2, 5) if m * power <= target)


def scale_bar_figure(
    path: str | Path, maps: dict[str, tuple[np.ndarray, float]], unit: str, title: str = ""
) -> Path:
    """A figure of maps (``name -> ([H, W, C], pixel size)``, last component in grey)
    in physical units, each with a scale bar; written atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 3.4), squeeze=False)
    for ax, (name, (image, pixel)) in zip(axes[0], maps.items(), strict=True):
        image = np.asarray(image)[..., -1]
        h, w = image.shape
        size, shown = nice_length(pixel, unit)
        extent = (0, w * size, h * size, 0)
        ax.imshow(image, cmap="gray", vmin=-1, vmax=1, extent=extent, interpolation="nearest")
        bar = _bar_length(w * size)
        x0, y0 = 0.05 * w * size, 0.92 * h * size
        ax.plot([x0, x0 + bar], [y0, y0], color="yellow", linewidth=3)
        label = re.sub(r"^um$", "µm", shown)
        ax.text(
            x0,
            y0 - 0.03 * h * size,
            f"{bar:g} {label}",
            color="yellow",
            fontsize=8,
            bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"},
        )
        ax.set_title(f"{name} ({size:.3g} {label}/px)", fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return write_figure(path, fig, dpi=120)


def write_sr_files(
    out: Path, sr: np.ndarray, lr: np.ndarray, picture: Picture | None, ratio: int, degrade: bool
) -> tuple[dict[str, Path], dict]:
    """The SR as a float32 TIFF (``sr.tif``; ``sr.gwy`` too for ``.gwy`` input) with the LR
    pixel size divided by ``ratio``, and a figure with scale bars where the size is known.

    With ``degrade`` the picture is the native truth: its pixel size is the SR's and the
    LR pixel is ``ratio`` times larger. Returns the files and the pixel sizes for a
    summary (``lr_pixel_size``, ``sr_pixel_size``, ``pixel_unit``; None where unknown).
    """
    files: dict[str, Path] = {}
    info = {"lr_pixel_size": None, "sr_pixel_size": None, "pixel_unit": None}
    size = picture.pixel_size if picture is not None else None
    if size is not None:
        native = float(size[1])
        lr_pixel = native * ratio if degrade else native
        info = {
            "lr_pixel_size": lr_pixel,
            "sr_pixel_size": lr_pixel / ratio,
            "pixel_unit": picture.unit,
            "value_unit": picture.value_unit,
        }
        if abs(size[0] - size[1]) > 1e-6 * abs(size[1]):
            logger.info("%s has non-square pixels %s: using x", picture.source, size)
    unit, sr_pixel = info["pixel_unit"], info["sr_pixel_size"]
    files["sr_tif"] = write_tiff(out / "sr.tif", sr, sr_pixel, unit)
    if picture is not None and picture.kind == "gwy" and sr_pixel is not None:
        files["sr_gwy"] = write_gwy(out / "sr.gwy", sr, sr_pixel, unit, f"SR x{ratio}")
    if sr_pixel is not None:
        maps = {f"LR (x1/{ratio})": (lr, info["lr_pixel_size"]), f"SR x{ratio}": (sr, sr_pixel)}
        files["scale_figure"] = scale_bar_figure(out / "scale_bar.png", maps, unit)
    return files, info
