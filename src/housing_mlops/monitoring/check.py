"""One check of a batch against a reference: the batch validated, then drift, performance, verdict."""

from collections.abc import Callable

import numpy as np
import pandas as pd

from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.errors import SchemaError
from housing_mlops.monitoring.drift import drift_of
from housing_mlops.monitoring.performance import performance_of
from housing_mlops.monitoring.reference import Reference
from housing_mlops.monitoring.verdict import MonitorReport, verdict_of

Predict = Callable[[pd.DataFrame], np.ndarray]


def _first(flags: pd.Series) -> int:
    return int(np.argmax(flags.to_numpy()))


def _numeric_or_fail(frame: pd.DataFrame, name: str, what: str) -> pd.Series:
    column = frame.loc[:, name]
    values = pd.Series(pd.to_numeric(column, errors="coerce"), index=column.index)
    bad = values.isna() & column.notna()
    if bad.any():
        at = _first(bad)
        raise SchemaError(
            f"batch {what} '{name}' holds text: row {column.index[at]} = {column.iloc[at]!r}; expected numbers"
        )
    return values


def validate_batch(batch: pd.DataFrame, reference: Reference, cfg: MonitorConfig) -> tuple[pd.DataFrame, list[str]]:
    """(the batch with numeric columns as numbers, its ignored extra columns); SchemaError naming the problem."""
    if len(batch) < cfg.min_rows:
        raise SchemaError(f"batch has {len(batch)} rows: monitoring needs at least monitor.min_rows = {cfg.min_rows}")
    features, target = reference["features"], reference["target"]
    missing = [name for name in features if name not in batch.columns]
    if missing:
        raise SchemaError(f"batch lacks feature column(s) {missing}: it needs every one of {list(features)}")
    checked = batch.copy()
    for name, entry in features.items():
        if entry["kind"] == "numeric":
            checked[name] = _numeric_or_fail(batch, name, "column")
    if target in batch.columns:
        labels = _numeric_or_fail(batch, target, "target column")
        if (labels < 0).any():
            at = _first(labels < 0)
            raise SchemaError(
                f"batch target column '{target}' is negative: row {labels.index[at]} = {float(labels.iloc[at])!r}"
            )
        checked[target] = labels
    ignored = [c for c in batch.columns if c not in features and c != target]
    return checked, ignored


def check(batch: pd.DataFrame, reference: Reference, predict: Predict, cfg: MonitorConfig) -> MonitorReport:
    """Check `batch` (with or without the target column) against `reference`, scoring it with `predict`.

    With labels, performance is measured on the rows whose target is given, when there are at least
    monitor.min_rows of them; otherwise the verdict rests on drift alone.
    """
    checked, ignored = validate_batch(batch, reference, cfg)
    X = checked[list(reference["features"])]
    predictions = np.asarray(predict(X), dtype=float).ravel()
    drift = drift_of(X, predictions, reference, cfg)
    performance = None
    target = reference["target"]
    if target in checked.columns:
        labelled = checked[target].notna().to_numpy()
        if labelled.sum() >= cfg.min_rows:
            y = checked[target].to_numpy(dtype=float)[labelled]
            performance = performance_of(y, predictions[labelled], reference["test_metrics"], cfg)
    verdict, reasons = verdict_of(drift, performance, cfg)
    return MonitorReport(verdict, reasons, drift, performance, ignored)
