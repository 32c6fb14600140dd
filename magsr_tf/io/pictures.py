"""Pictures as spin maps: reading microscope images and writing SR maps as PNG.

A picture holds one spin component per image (MOKE, MFM, PEEM contrast is
m_z; three images give m_x, m_y, m_z). Its pixel values are mapped linearly
onto [-1, 1] by robust percentiles (or a calibrated value range), as Lee et
al. (Sci. Rep. 2023, "Experimental images") normalize their microscope data.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.io.formats import Picture, check_picture, colour_to_grey, is_format_path, read_format
from magsr_tf.io.writers import atomic_path

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gwy", ".dm3", ".dm4", ".ibw")
"""Pictures read as spin components: Pillow's, and the files of :mod:`magsr_tf.io.formats`."""
LOW_PERCENTILE = 0.5
HIGH_PERCENTILE = 99.5
PICTURE_BYTES_PER_PIXEL = 48
"""Peak bytes per pixel of reading one picture as a spin component: the decoded image
(up to 4), float64 values (8), the percentile's copy (8) and normalization temporaries
(2 x 8 + 4), with some headroom; callers turn a memory limit into ``max_pixels``."""
PNG_BAND_ROWS = 256
"""Rows of a spin map encoded at a time by :func:`write_png`."""


def is_image_path(path: str | Path) -> bool:
    """True for file names that :func:`read_image` reads as pictures."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_picture(path: str | Path, max_pixels: int | None = None) -> Picture:
    """Reads a picture's raw values ``[H, W, C]`` (C = 1 or 3) and its pixel size.

    TIFF, ``.gwy``, DigitalMicrograph and Igor files go through
    :func:`magsr_tf.io.formats.read_format` (pixel size and unit where the file has
    them); PNG, JPEG and BMP through Pillow (no pixel size). Colour pictures follow
    one stated rule: an opaque alpha channel is dropped, equal R, G, B channels are the
    grey value, and differing channels are refused (say how to convert) rather than
    read as brightness; transparent pixels are refused.

    Args:
        path: the picture.
        max_pixels: refuse pictures with more pixels, checked from the header first.

    Raises:
        MagsrError: missing, unreadable or not a picture, colour with differing
            channels, transparent pixels, fewer than 2 x 2 pixels, constant or
            non-finite values, or more than ``max_pixels`` pixels.
    """
    if is_format_path(path):
        return read_format(path, max_pixels)
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise MagsrError(f"no image file {path}")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise MagsrError(
                    f"{path} is {width}x{height} pixels; at most {max_pixels:,} fit in the "
                    f"memory limit ({PICTURE_BYTES_PER_PIXEL} bytes per pixel to read it)"
                )
            img.load()
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            if img.mode == "PA":
                img = img.convert("RGBA")
            if "A" in img.getbands():
                # Transparent pixels have no measured value: refuse them rather
                # than read whatever colour lies under the alpha channel.
                if img.getchannel("A").getextrema()[0] < 255:
                    raise MagsrError(
                        f"{path} has transparent pixels (an alpha channel below 255); "
                        "flatten or crop it first"
                    )
                logger.info("%s has an opaque alpha channel: dropping it", path)
                img = img.convert("L" if img.mode == "LA" else "RGB")
            colour = img.mode in ("RGB", "CMYK", "YCbCr")
            if colour:
                img = img.convert("RGB")
            array = np.asarray(img, dtype=np.float64)
    except Image.DecompressionBombError as exc:
        raise MagsrError(f"{path} is refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise MagsrError(f"cannot read {path} as an image: {exc}") from exc
    if colour:
        array = colour_to_grey(array, path)
    if array.ndim != 2:
        raise MagsrError(f"{path} is not a 2-D grayscale image. Received: shape={array.shape}")
    return Picture(check_picture(array, path)[..., None], source=str(path))


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """Reads a one-component picture as float64 ``[H, W]`` (see :func:`read_picture`).

    Raises:
        MagsrError: as :func:`read_picture`, or a file with 3 components.
    """
    values = read_picture(path, max_pixels).values
    if values.shape[-1] != 1:
        raise MagsrError(
            f"{path} holds {values.shape[-1]} components; give it alone (m_x, m_y, m_z)"
        )
    return values[..., 0]


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


def picture_spins(
    paths: Sequence[str | Path],
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
    max_pixels: int | None = None,
) -> tuple[np.ndarray, Picture]:
    """The ``[H, W, C]`` spin map of pictures and the first one's pixel size and units.

    One picture with one component (m_z) or three (TIFF pages or channels: m_x, m_y,
    m_z), or three one-component pictures. Each component is mapped onto [-1, 1] by
    :func:`normalize_component` (instrument units included: a phase in degrees, a
    height in m). The returned :class:`Picture` keeps the pixel size, not the values.

    Raises:
        MagsrError: not 1 or 3 components, unreadable files, or differing sizes.
    """
    if len(paths) not in (1, 3):
        raise MagsrError(
            f"give one image (m_z) or three (m_x m_y m_z). Received: {len(paths)} images"
        )
    pictures = [read_picture(p, max_pixels) for p in paths]
    if len(paths) == 3 and any(p.values.shape[-1] != 1 for p in pictures):
        raise MagsrError("each of three pictures must hold one component (m_x, m_y, m_z)")
    shapes = {p.values.shape[:2] for p in pictures}
    if len(shapes) != 1:
        raise MagsrError(f"the x, y, z images differ in size. Received: shapes={sorted(shapes)}")
    components = [c for p in pictures for c in np.moveaxis(p.values, -1, 0)]
    spins = np.stack([normalize_component(c, low, high, value_range) for c in components], -1)
    first = pictures[0]
    info = Picture(
        np.empty((0, 0, 0)),
        first.pixel_size,
        first.unit,
        first.value_unit,
        first.kind,
        ", ".join(str(p) for p in paths),
        first.extra,
    )
    return spins, info


def images_to_spins(
    paths: Sequence[str | Path],
    low: float = LOW_PERCENTILE,
    high: float = HIGH_PERCENTILE,
    value_range: tuple[float, float] | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """One image (m_z) or three images (m_x, m_y, m_z) as a ``[H, W, C]`` spin map.

    ``max_pixels`` bounds each picture (see :func:`read_picture`); a TIFF may hold
    the three components itself (:func:`picture_spins`).

    Raises:
        MagsrError: not 1 or 3 components, unreadable files, or differing sizes.
    """
    return picture_spins(paths, low, high, value_range, max_pixels)[0]


def spins_to_uint8(spins: np.ndarray) -> np.ndarray:
    """``[H, W, C]`` in [-1, 1] to 8 bits: grayscale for C = 1, RGB = (m + 1) / 2 for C = 3."""
    spins = np.asarray(spins)
    pixels = np.round((np.clip(spins, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path: str | Path, spins: np.ndarray) -> Path:
    """Writes a ``[H, W, C]`` spin map as a PNG atomically (see :func:`spins_to_uint8`).

    The map is encoded :data:`PNG_BAND_ROWS` rows at a time (8-bit grayscale or RGB,
    PNG's "Up" row filter), so a memory-mapped SR of any size is written without a
    full in-memory copy. ``spins`` may be any object with ``shape``, ``ndim`` and
    row slices (``spins[a:b]``), e.g. a reader of a file's rows.
    """
    if not hasattr(spins, "shape"):  # arrays and row readers (rows by slices) are kept as is
        spins = np.asarray(spins)
    if spins.ndim != 3 or spins.shape[-1] not in (1, 3) or min(spins.shape[:2]) < 1:
        raise MagsrError(f"a PNG needs a [H, W, 1 or 3] map. Received: shape={spins.shape}")
    height, width, channels = spins.shape
    colour = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    compressor = zlib.compressobj(6)
    previous = np.zeros((1, width * channels), np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))
        for start in range(0, height, PNG_BAND_ROWS):
            band = spins[start : start + PNG_BAND_ROWS]
            rows = spins_to_uint8(band).reshape(-1, width * channels)
            stacked = np.concatenate([previous, rows])
            up = np.diff(stacked.astype(np.int16), axis=0).astype(np.uint8)  # mod 256
            lines = np.concatenate([np.full((len(rows), 1), 2, np.uint8), up], axis=1)
            data = compressor.compress(lines.tobytes())
            if data:
                handle.write(_png_chunk(b"IDAT", data))
            previous = rows[-1:]
        handle.write(_png_chunk(b"IDAT", compressor.flush()))
        handle.write(_png_chunk(b"IEND", b""))
    return Path(path)
