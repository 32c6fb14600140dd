"""Image-similarity metrics of spin maps, as Lee et al. (Sci. Rep. 2023) define them.

The paper ("Spin configuration similarity measurement", Experimental section)
scores a reconstructed map s' against the ground truth s per image:

- MSE  = mean over sites *and* the components of (s - s')^2. Its Tables 1/2
  satisfy Corr = 1 - 1.5 MSE for unit spins (e.g. 0.0016 <-> 0.9976), which
  pins the mean over components (one third of the mean squared vector
  difference |s - s'|^2).
- Corr = mean over sites of s . s'.
- PSNR = 10 log10(MAX^2 / MSE) with MAX = 2 (spin components span [-1, 1]).
  The tables' PSNR column is 6.02 dB higher than this formula gives for their
  own MSE column: it equals 10 log10(16 / MSE). Both are reported, labelled.

All functions take ``[n, H, W, C]`` arrays (a single ``[H, W, C]`` map is
treated as n = 1) and return one value per image, shape ``[n]``, float64.
Tables quote mean +- std over the test images (:func:`summarize`).
"""

from __future__ import annotations

import numpy as np

from magsr_tf.errors import MagsrError

PSNR_MAX = 2.0
"""MAX of the paper's PSNR formula: spin components range over [-1, 1]."""

PSNR_TABLES_NUMERATOR = 16.0
"""MAX^2 that reproduces the PSNR column of the paper's Tables 1/2 from their MSE column."""

METRICS = ("mse", "psnr", "psnr_tables", "corr")


def _pair(truth, pred) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(truth, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    if truth.shape != pred.shape:
        raise MagsrError(
            f"ground truth and prediction must have the same shape. "
            f"Received: {truth.shape} and {pred.shape}"
        )
    if truth.ndim == 3:
        truth, pred = truth[None], pred[None]
    if truth.ndim != 4:
        raise MagsrError(f"expected maps shaped [n, H, W, C]. Received: shape={truth.shape}")
    return truth, pred


def mse(truth, pred) -> np.ndarray:
    """Per-image mean over sites and components of (s - s')^2, shape ``[n]``."""
    truth, pred = _pair(truth, pred)
    return np.mean((truth - pred) ** 2, axis=(1, 2, 3))


def corr(truth, pred) -> np.ndarray:
    """Per-image spin-spin correlation, the mean over sites of s . s', shape ``[n]``.

    For one-component maps this is the mean of s_z s'_z.
    """
    truth, pred = _pair(truth, pred)
    return np.mean(np.sum(truth * pred, axis=-1), axis=(1, 2))


def _psnr_from_mse(errors: np.ndarray, max_squared: float) -> np.ndarray:
    # Identical maps have MSE 0 and an infinite PSNR; compute it without a
    # divide-by-zero warning.
    out = np.full(errors.shape, np.inf)
    positive = errors > 0
    out[positive] = 10.0 * np.log10(max_squared / errors[positive])
    return out


def psnr(truth, pred, max_value: float = PSNR_MAX) -> np.ndarray:
    """Per-image PSNR = 10 log10(MAX^2 / MSE) in dB, the paper's formula (MAX = 2).

    Identical maps give ``inf`` (no warning).
    """
    return _psnr_from_mse(mse(truth, pred), float(max_value) ** 2)


def psnr_table_convention(truth, pred) -> np.ndarray:
    """Per-image 10 log10(16 / MSE) in dB: the convention of the paper's tables.

    It is :func:`psnr` + 10 log10(4) = +6.02 dB; use it only to compare with
    the numbers printed in Tables 1/2.
    """
    return _psnr_from_mse(mse(truth, pred), PSNR_TABLES_NUMERATOR)


def summarize(values) -> dict:
    """Mean and standard deviation over the test images, as the paper's tables quote them.

    Infinite values (PSNR of identical maps) make the mean infinite and the
    std NaN-free: the std is then taken over the finite values only.

    Returns:
        ``{"mean": float, "std": float, "n": int}``; std is the population std
        (ddof = 0).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    finite = values[np.isfinite(values)]
    mean = float(np.mean(values)) if finite.size == values.size else float(np.inf)
    if finite.size == values.size:
        std = float(np.std(values))
    else:
        std = float(np.std(finite)) if finite.size else 0.0
    return {"mean": mean, "std": std, "n": int(values.size)}


def per_image(truth, pred) -> dict[str, np.ndarray]:
    """All metrics per image: ``{"mse", "psnr", "psnr_tables", "corr"}`` -> ``[n]`` arrays."""
    errors = mse(truth, pred)
    return {
        "mse": errors,
        "psnr": _psnr_from_mse(errors, PSNR_MAX**2),
        "psnr_tables": _psnr_from_mse(errors, PSNR_TABLES_NUMERATOR),
        "corr": corr(truth, pred),
    }


def score(truth, pred) -> dict:
    """Mean +- std over images of every metric.

    Returns:
        ``{"mse": {"mean", "std", "n"}, "psnr": ..., "psnr_tables": ..., "corr": ...}``.
    """
    return {name: summarize(values) for name, values in per_image(truth, pred).items()}


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two maps (all pixels and components pooled)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")
