"""Selectable degradation: the blur that turns a native image into its LR samples.

The paper's operator (and this package's default) blurs each component with a
normalized Gaussian of sigma = 1 native pixel and keeps every r-th pixel, LR
pixel k sitting on native pixel k r (:mod:`magsr_tf.ops.downsample`). Microscopes
do not blur like that, so the blur is selectable by a short spec:

- ``gaussian:SIGMA`` (``gaussian`` alone is sigma = 1): a Gaussian of SIGMA
  native pixels, 23 taps while 4 SIGMA fits in 11 pixels, wider beyond;
- ``box`` or ``box:WIDTH``: the mean over WIDTH native pixels centred on the
  sample (default WIDTH = r, a detector integrating over its whole pixel; an
  even WIDTH has half-weight end taps so that the box stays centred);
- ``psf:FILE.npy``: a measured 2-D point-spread function (odd sides, centred on
  its middle pixel, normalized here to sum 1).

Every degradation is a linear map ``LR = A(native)``. Gaussian and box are
separable, so ``A`` is ``Wy X Wx^T`` with 1-D matrices; a PSF is applied as a
2-D sparse operator (exactly the padded correlation with the flipped PSF at
stride r). :func:`parse_degradation` is the one entry point for specs;
:meth:`Degradation.to_config` / :meth:`Degradation.from_config` round-trip a
degradation through JSON (a PSF keeps its taps, so a saved model does not need
the file).

:func:`estimate_sigma` guesses the Gaussian sigma from an LR image alone (for
two-level domain images; see its docstring and docs/real_images.md for the
measured accuracy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magsr_tf.errors import MagsrError
from magsr_tf.ops.kernels import (
    KERNEL_SIZE,
    PADDING_MODES,
    apply_separable,
    gaussian_kernel_1d,
    gaussian_matrix,
    source_index,
)

KINDS = ("gaussian", "box", "psf")
DEFAULT_SIGMA = 1.0
MAX_PSF = 255
"""Largest PSF side accepted (a bigger array is almost surely not a PSF)."""
SIGMA_LEVEL = 0.8
"""|m| below which :func:`estimate_sigma` counts an LR sample as wall: at 0.5 a
blur under one native pixel leaves no sample inside the band (the walls of a
pixelated native image lie half a pixel from every pixel centre)."""
_GAUSSIAN_REACH = 4.0
"""A Gaussian kernel reaches at least this many sigmas each side."""


@dataclass(frozen=True, eq=False)
class Degradation:
    """A blur followed by stride-r sampling (LR pixel k on native pixel k r).

    Attributes:
        kind: ``"gaussian"``, ``"box"`` or ``"psf"``.
        sigma: Gaussian sigma in native pixels (``kind == "gaussian"``).
        width: box width in native pixels; None: the ratio (``kind == "box"``).
        psf: the point-spread function, a 2-D float64 array with odd sides
            summing to 1 (``kind == "psf"``).
        source: where the PSF came from (for names and logs only).
    """

    kind: str = "gaussian"
    sigma: float = DEFAULT_SIGMA
    width: int | None = None
    psf: np.ndarray | None = None
    source: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise MagsrError(f"degradation must be one of {KINDS}. Received: kind={self.kind!r}")
        if self.kind == "gaussian" and not (
            math.isfinite(self.sigma) and 0.0 < self.sigma <= MAX_PSF / (2 * _GAUSSIAN_REACH)
        ):
            raise MagsrError(
                f"gaussian sigma must be in (0, {MAX_PSF / (2 * _GAUSSIAN_REACH):g}] native pixels."
                f" Received: sigma={self.sigma}"
            )
        if self.kind == "box" and self.width is not None and not 1 <= self.width <= MAX_PSF:
            raise MagsrError(f"box width must be in 1..{MAX_PSF}. Received: width={self.width}")
        if self.kind == "psf":
            object.__setattr__(self, "psf", _check_psf(self.psf, self.source or "psf"))

    def __eq__(self, other):
        if not isinstance(other, Degradation):
            return NotImplemented
        return self.to_config() == other.to_config()

    def __hash__(self):
        return hash(self.name)

    @property
    def name(self) -> str:
        """The spec that :func:`parse_degradation` reads back (a PSF by its file name)."""
        if self.kind == "gaussian":
            return f"gaussian:{self.sigma:g}"
        if self.kind == "box":
            return "box" if self.width is None else f"box:{self.width}"
        return f"psf:{self.source or 'array'}"

    @property
    def is_default(self) -> bool:
        """True for the paper's Gaussian with sigma = 1."""
        return self.kind == "gaussian" and self.sigma == DEFAULT_SIGMA

    @property
    def separable(self) -> bool:
        """Gaussian and box factor into 1-D taps; a PSF is treated as 2-D."""
        return self.kind != "psf"

    def taps_1d(self, ratio: int | None = None) -> np.ndarray:
        """Normalized 1-D taps (odd length, centred) of a separable degradation.

        Raises:
            MagsrError: a PSF, or a box without a width and without a ratio.
        """
        if self.kind == "gaussian":
            half = max(KERNEL_SIZE // 2, math.ceil(_GAUSSIAN_REACH * self.sigma))
            return gaussian_kernel_1d(2 * half + 1, self.sigma)
        if self.kind == "box":
            width = self.width if self.width is not None else ratio
            if width is None:
                raise MagsrError("a box degradation without a width needs the ratio")
            taps = np.ones(width + 1 - width % 2)
            if width % 2 == 0:
                # Even width: half-weight ends keep the box centred on the sample.
                taps[0] = taps[-1] = 0.5
            return taps / taps.sum()
        raise MagsrError(f"{self.name} is not separable")

    def kernel(self, ratio: int | None = None) -> np.ndarray:
        """The 2-D correlation kernel, square with odd sides, float64, sums to 1.

        ``LR[k, l] = sum_{dy, dx} kernel[c + dy, c + dx] * native[k r + dy, l r + dx]``
        with c the centre index. For a PSF (the image of a point source) this
        is the PSF turned by 180 degrees, zero-padded to a square.
        """
        if self.separable:
            taps = self.taps_1d(ratio)
            return np.outer(taps, taps)
        flipped = self.psf[::-1, ::-1]
        side = max(flipped.shape)
        out = np.zeros((side, side))
        y0, x0 = (side - flipped.shape[0]) // 2, (side - flipped.shape[1]) // 2
        out[y0 : y0 + flipped.shape[0], x0 : x0 + flipped.shape[1]] = flipped
        return out

    def to_config(self) -> dict:
        """JSON-serializable description (a PSF keeps its taps)."""
        if self.kind == "gaussian":
            return {"kind": "gaussian", "sigma": float(self.sigma)}
        if self.kind == "box":
            return {"kind": "box", "width": self.width}
        return {"kind": "psf", "psf": self.psf.tolist(), "source": self.source}

    @classmethod
    def from_config(cls, config: dict) -> Degradation:
        """Inverse of :meth:`to_config`."""
        config = dict(config)
        if config.get("kind") == "psf":
            config["psf"] = np.asarray(config.get("psf"), dtype=np.float64)
        try:
            return cls(**config)
        except TypeError as exc:
            raise MagsrError(f"not a degradation config. Received: {config}") from exc


DEFAULT = Degradation()
"""The paper's degradation: Gaussian, sigma = 1 native pixel."""


def _check_psf(psf, source: str) -> np.ndarray:
    if psf is None:
        raise MagsrError("a psf degradation needs the PSF array")
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2:
        raise MagsrError(f"the PSF {source} must be a 2-D array. Received: shape={psf.shape}")
    if psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0 or max(psf.shape) > MAX_PSF:
        raise MagsrError(
            f"the PSF {source} must have odd sides (centred on its middle pixel) of at most "
            f"{MAX_PSF}. Received: shape={psf.shape}"
        )
    if not np.all(np.isfinite(psf)):
        raise MagsrError(f"the PSF {source} holds non-finite values")
    total = psf.sum()
    if not total > 0:
        raise MagsrError(f"the PSF {source} must have a positive sum. Received: sum={total:g}")
    return psf / total


def parse_degradation(spec: str | Degradation | dict | None) -> Degradation:
    """Reads ``gaussian[:SIGMA]``, ``box[:WIDTH]`` or ``psf:FILE.npy`` (None: the default).

    A :class:`Degradation` passes through and a dict is read by
    :meth:`Degradation.from_config`.

    Raises:
        MagsrError: an unknown kind, a bad number, or an unreadable or
            ill-shaped PSF file.
    """
    if spec is None:
        return DEFAULT
    if isinstance(spec, Degradation):
        return spec
    if isinstance(spec, dict):
        return Degradation.from_config(spec)
    text = str(spec).strip()
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind == "gaussian":
        try:
            sigma = float(arg) if arg else DEFAULT_SIGMA
        except ValueError as exc:
            raise MagsrError(f"gaussian:SIGMA needs a number. Received: {text!r}") from exc
        return Degradation("gaussian", sigma=sigma)
    if kind == "box":
        try:
            width = int(arg) if arg else None
        except ValueError as exc:
            raise MagsrError(f"box:WIDTH needs an integer. Received: {text!r}") from exc
        return Degradation("box", width=width)
    if kind == "psf":
        if not arg:
            raise MagsrError(f"psf needs a file, psf:FILE.npy. Received: {text!r}")
        path = Path(arg)
        try:
            psf = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise MagsrError(f"cannot read the PSF {path} as a .npy array: {exc}") from exc
        return Degradation("psf", psf=psf, source=path.name)
    raise MagsrError(
        f"degradation must be gaussian[:SIGMA], box[:WIDTH] or psf:FILE.npy. Received: {text!r}"
    )


def _source_rows(n: int, ratio: int, offsets: np.ndarray, padding: str) -> np.ndarray:
    """Native indices ``[n // ratio, len(offsets)]`` read by each LR sample, padding folded in."""
    if padding not in PADDING_MODES:
        raise MagsrError(f"padding must be one of {PADDING_MODES}. Received: padding={padding!r}")
    if padding == "reflect" and n < 2:
        raise MagsrError(f"reflect padding needs at least 2 pixels. Received: size={n}")
    if n % ratio:
        raise MagsrError(f"image size {n} is not divisible by the ratio. Received: ratio={ratio}")
    centres = np.arange(n // ratio) * ratio
    return source_index(centres[:, None] + offsets[None, :], n, padding)


def operator_1d(n: int, ratio: int, degradation: Degradation, padding: str = "reflect"):
    """The 1-D matrix ``W`` (``[n // ratio, n]``, float64) of a separable degradation."""
    taps = degradation.taps_1d(ratio)
    offsets = np.arange(taps.size) - taps.size // 2
    cols = _source_rows(n, ratio, offsets, padding)
    w = np.zeros((n // ratio, n))
    rows = np.broadcast_to(np.arange(n // ratio)[:, None], cols.shape)
    np.add.at(w, (rows, cols), np.broadcast_to(taps, cols.shape))
    return w


class DegradationOperator:
    """``A`` and its adjoint for one image size: ``[H, W]`` native to ``[H / r, W / r]`` LR.

    Separable degradations use two sparse 1-D matrices; a PSF a 2-D sparse
    matrix (one row per LR pixel, one entry per PSF tap, padding folded in).

    Args:
        shape: native ``(H, W)``, both divisible by ``ratio``.
        ratio: stride r.
        degradation: the blur.
        padding: ``"reflect"`` (microscope images) or ``"periodic"``.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        ratio: int,
        degradation: Degradation = DEFAULT,
        padding: str = "reflect",
    ):
        import scipy.sparse as sp

        self.shape = tuple(int(s) for s in shape)
        self.ratio = int(ratio)
        self.lr_shape = (self.shape[0] // self.ratio, self.shape[1] // self.ratio)
        self.degradation = degradation
        h, w = self.shape
        if degradation.separable:
            self.wy = sp.csr_matrix(operator_1d(h, ratio, degradation, padding))
            self.wx = sp.csr_matrix(operator_1d(w, ratio, degradation, padding))
            self.wyt, self.wxt = self.wy.T.tocsr(), self.wx.T.tocsr()
            self.matrix = None
        else:
            k = degradation.kernel(ratio)
            offsets = np.arange(k.shape[0]) - k.shape[0] // 2
            ys = _source_rows(h, ratio, offsets, padding)  # [h', K]
            xs = _source_rows(w, ratio, offsets, padding)  # [w', K]
            nz = k != 0
            dy, dx = np.nonzero(nz)
            cols = ys[:, None, None, dy] * w + xs[None, :, None, dx]  # [h', w', 1, taps]
            cols = cols.reshape(self.lr_shape[0] * self.lr_shape[1], -1)
            rows = np.broadcast_to(np.arange(cols.shape[0])[:, None], cols.shape)
            data = np.broadcast_to(k[dy, dx][None, :], cols.shape)
            self.matrix = sp.csr_matrix(
                (data.ravel(), (rows.ravel(), cols.ravel())), shape=(cols.shape[0], h * w)
            )
            self.matrix_t = self.matrix.T.tocsr()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``A x`` for ``x`` of shape ``[H, W]``."""
        if self.matrix is None:
            return np.asarray(self.wy @ (self.wx @ x.T).T)
        return (self.matrix @ x.ravel()).reshape(self.lr_shape)

    def adjoint(self, y: np.ndarray) -> np.ndarray:
        """``A^T y`` for ``y`` of shape ``[H / r, W / r]``."""
        if self.matrix is None:
            return np.asarray(self.wyt @ (self.wxt @ y.T).T)
        return (self.matrix_t @ y.ravel()).reshape(self.shape)


def degrade(
    native: np.ndarray, ratio: int, degradation=None, padding: str = "reflect"
) -> np.ndarray:
    """Applies a degradation to ``[H, W]``, ``[H, W, C]`` or ``[n, H, W, C]`` maps (float32 out).

    The default degradation gives exactly :func:`magsr_tf.ops.downsample.downsample`.
    """
    degradation = parse_degradation(degradation)
    native = np.asarray(native)
    if native.ndim == 2:
        return degrade(native[..., None], ratio, degradation, padding)[..., 0]
    squeeze = native.ndim == 3
    batch = native[None] if squeeze else native
    if batch.ndim != 4:
        raise MagsrError(f"expected maps shaped [n, H, W, C]. Received: shape={native.shape}")
    if degradation.separable:
        h, w = batch.shape[1:3]
        if degradation.is_default:
            wy, wx = gaussian_matrix(h, ratio, padding), gaussian_matrix(w, ratio, padding)
        else:
            wy = operator_1d(h, ratio, degradation, padding)
            wx = operator_1d(w, ratio, degradation, padding)
        out = apply_separable(batch, wy, wx)
        return out[0] if squeeze else out
    op = DegradationOperator(batch.shape[1:3], ratio, degradation, padding)
    out = np.stack(
        [
            np.stack([op(img[..., c].astype(np.float64)) for c in range(batch.shape[-1])], -1)
            for img in batch
        ]
    ).astype(np.float32)
    return out[0] if squeeze else out


def _wall_statistics(lr: np.ndarray, ratio: int, level: float) -> tuple[float, float]:
    """Wall length per native pixel area and the fraction of LR samples with |m| < level."""
    lr = np.asarray(lr, dtype=np.float64)
    if lr.ndim == 3 and lr.shape[-1] == 1:
        lr = lr[..., 0]
    if lr.ndim != 2 or min(lr.shape) < 2:
        raise MagsrError(f"expected one LR image [h, w]. Received: shape={lr.shape}")
    lo, hi = np.percentile(lr, [0.5, 99.5])
    if not hi > lo:
        raise MagsrError("the LR image has no contrast")
    m = np.clip(2.0 * (lr - lo) / (hi - lo) - 1.0, -1.0, 1.0)
    s = m > 0
    pairs = s[1:].size + s[:, 1:].size
    crossings = (
        np.count_nonzero(s[1:] != s[:-1]) + np.count_nonzero(s[:, 1:] != s[:, :-1])
    ) / pairs
    # Crofton: a random line crosses 2/pi * (wall length per area) walls per unit length.
    wall_density = 0.5 * math.pi * crossings / ratio
    return wall_density, float(np.mean(np.abs(m) < level))


def wall_width(lr: np.ndarray, ratio: int, level: float = 0.5) -> float:
    """Effective wall width of a two-level domain image from its LR samples alone.

    LR samples fall at random places relative to the walls, so the share of
    samples that are neither up nor down (``|m| < level``) is the wall area
    fraction: (wall length per area) x (width of the band where ``|m| < level``).
    The wall length per area comes from the sign changes between neighbouring
    LR pixels (Crofton's formula). The result is the sigma (in native pixels)
    of an ``erf(x / (sqrt(2) sigma))`` wall profile that gives the same share:
    the blur and the native wall width together.

    Args:
        lr: ``[h, w]`` LR image (any intensity scale; robust percentiles map it
            onto [-1, 1]).
        ratio: native pixels per LR pixel.
        level: the ``|m|`` below which a sample counts as wall.

    Raises:
        MagsrError: a flat image or one without walls.
    """
    from scipy.special import erfinv

    density, share = _wall_statistics(lr, ratio, level)
    if density <= 0:
        raise MagsrError("the LR image shows no domain walls; cannot estimate the blur")
    return share / (density * 2.0 * math.sqrt(2.0) * float(erfinv(level)))


def estimate_sigma(lr: np.ndarray, ratio: int, native_wall: float = 0.0) -> float:
    """Guesses the Gaussian sigma (native pixels) of the degradation from an LR image.

    Assumes a two-level domain image whose native walls have the erf-width
    ``native_wall`` (0: sharp walls, as in a binary domain map); the blur is
    what :func:`wall_width` measures beyond it (in quadrature). Walls need to
    be at least about 2 LR pixels apart for the crossing count (domains wider
    than 2 r native pixels). Blur and wall width cannot be told apart from
    one image: on a real image with soft walls the result is their sum in
    quadrature. Accuracy on degraded test images: docs/real_images.md.
    """
    width = wall_width(lr, ratio, SIGMA_LEVEL)
    return float(math.sqrt(max(width**2 - native_wall**2, 0.0)))
