"""The model's error on a labelled batch, with a bootstrap interval, against its registered test metrics."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.modeling.metrics import mae, resampled_wmape, rmse, wmape


@dataclass(frozen=True)
class Interval:
    """A metric on the batch and its bootstrap percentile interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class PerformanceReport:
    """wMAPE, RMSE and MAE on the batch against the test metrics; degraded beyond the tolerance."""

    rows: int
    metrics: dict[str, Interval]
    test_metrics: dict[str, float]
    limit: float  # test wMAPE x (1 + monitor.tolerance)
    degraded: bool  # the lower bound of the batch's wMAPE interval exceeds `limit`


def performance_of(
    y_true: ArrayLike, y_pred: ArrayLike, test_metrics: dict[str, float], cfg: MonitorConfig
) -> PerformanceReport:
    """Bootstrap the batch's wMAPE, RMSE and MAE (monitor.bootstrap) and compare wMAPE with the test's."""
    y, p = np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel()
    boot = cfg.bootstrap
    rows = np.random.default_rng(boot.seed).integers(0, y.size, size=(boot.resamples, y.size))
    resampled = {
        "wmape": resampled_wmape(y, p, rows),
        "rmse": np.array([rmse(y[r], p[r]) for r in rows]),
        "mae": np.array([mae(y[r], p[r]) for r in rows]),
    }
    point = {"wmape": wmape(y, p), "rmse": rmse(y, p), "mae": mae(y, p)}
    tail = (1 - boot.confidence) / 2
    metrics = {
        name: Interval(point[name], float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1 - tail)))
        for name, values in resampled.items()
    }
    limit = test_metrics["wmape"] * (1 + cfg.tolerance)
    return PerformanceReport(
        rows=int(y.size),
        metrics=metrics,
        test_metrics=dict(test_metrics),
        limit=float(limit),
        degraded=bool(metrics["wmape"].low > limit),
    )
