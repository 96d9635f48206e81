"""Regression metrics. Percentage-type metrics are fractions (0.12 means 12 %).

Targets of zero make relative errors undefined: MAPE, sMAPE, median APE and the
within-x shares skip those rows (and are NaN if none is left); wMAPE divides by Σ|y| and
is NaN only when every target is zero.
"""

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

Metric = Callable[[ArrayLike, ArrayLike], float]


def _arrays(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equal length: {y.shape}, {p.shape}")
    return y, p


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error."""
    y, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(y - p)))


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared error."""
    y, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def r2(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination; NaN when the target is constant."""
    y, p = _arrays(y_true, y_pred)
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - np.sum((y - p) ** 2) / total) if total > 0 else float("nan")


def wmape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Σ|y-ŷ| / Σ|y| = MAE / mean|y|."""
    y, p = _arrays(y_true, y_pred)
    return float(resampled_wmape(y, p, np.arange(y.size)[np.newaxis])[0])


def resampled_wmape(y_true: ArrayLike, y_pred: ArrayLike, rows: np.ndarray) -> np.ndarray:
    """WMAPE of each resample of the rows: row i of the 2-D `rows` holds the row numbers of resample i.

    The one definition of wMAPE (`wmape` is the resample of every row once); NaN where Σ|y| is 0.
    """
    y, p = _arrays(y_true, y_pred)
    errors, targets = np.abs(y - p)[rows].sum(axis=-1), np.abs(y)[rows].sum(axis=-1)
    return np.divide(errors, targets, out=np.full(errors.shape, np.nan), where=targets > 0)


def _ape(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Absolute percentage errors of the rows with a non-zero target."""
    y, p = _arrays(y_true, y_pred)
    keep = y != 0
    return np.abs(y[keep] - p[keep]) / np.abs(y[keep])


def mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error over the non-zero targets."""
    ape = _ape(y_true, y_pred)
    return float(ape.mean()) if ape.size else float("nan")


def median_ape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Median absolute percentage error over the non-zero targets."""
    ape = _ape(y_true, y_pred)
    return float(np.median(ape)) if ape.size else float("nan")


def smape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean of 2|y-ŷ| / (|y|+|ŷ|), in [0, 2]; rows where both are zero count as 0."""
    y, p = _arrays(y_true, y_pred)
    scale = np.abs(y) + np.abs(p)
    terms = np.divide(2 * np.abs(y - p), scale, out=np.zeros_like(scale), where=scale > 0)
    return float(terms.mean())


def within(share: float) -> Metric:
    """Fraction of rows whose absolute percentage error is at most `share`."""

    def metric(y_true: ArrayLike, y_pred: ArrayLike) -> float:
        ape = _ape(y_true, y_pred)
        return float(np.mean(ape <= share + 1e-12)) if ape.size else float("nan")

    return metric


METRICS: dict[str, Metric] = {
    "wmape": wmape,
    "mae": mae,
    "rmse": rmse,
    "r2": r2,
    "mape": mape,
    "smape": smape,
    "median_ape": median_ape,
    "within_5pct": within(0.05),
    "within_10pct": within(0.10),
    "within_15pct": within(0.15),
}
# Lower is better for these; the rest (r2, within_*) are higher-is-better.
LOWER_IS_BETTER = frozenset({"wmape", "mae", "rmse", "mape", "smape", "median_ape"})


def evaluate(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Every metric, keyed by name."""
    return {name: fn(y_true, y_pred) for name, fn in METRICS.items()}
