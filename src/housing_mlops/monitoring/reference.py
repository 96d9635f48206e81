"""The monitoring reference: what a batch is compared with, built at registration from train.

A plain JSON-able dict, versioned by its "schema" key, so it can live with the model version:

    {"schema": 1, "rows": n, "bins": k, "target": name,
     "features": {name: {"kind": "numeric", "edges": [...], "proportions": [...],
                         "missing_rate": m, "min": lo, "max": hi}
                      | {"kind": "categorical", "frequencies": {category: share}, "missing_rate": m}},
     "predictions": {"kind": "numeric", ...},   # the out-of-fold predictions on train
     "test_metrics": {"wmape": ..., "rmse": ..., "mae": ..., ...}}

Numeric values fall in len(edges) + 1 bins, (-inf, e1], (e1, e2], ..., (e_last, inf): the training
quantiles are the interior edges, the outer bins are open so a value outside the training range
still has a bin. Proportions and frequencies are shares of all rows; with missing_rate they sum to 1.
"""

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from housing_mlops.config.data import DataConfig
from housing_mlops.errors import MonitoringReferenceError

SCHEMA = 1
KINDS = ("numeric", "categorical")
REQUIRED_METRICS = ("wmape", "rmse", "mae")
Reference = dict[str, Any]


def quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Interior bin edges: the distinct quantiles 1/bins, ..., (bins-1)/bins of the non-missing values."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    return [float(e) for e in np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))]


def numeric_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts of the len(edges) + 1 value bins, then of the missing values (one more bin)."""
    missing = np.isnan(values)
    where = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="left")
    return np.append(np.bincount(where, minlength=len(edges) + 1), missing.sum())


def category_counts(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Counts of each reference category, then of unseen categories, then of missing values."""
    missing = values.isna().to_numpy()
    present = values[~missing].astype(str)
    known = present.value_counts().reindex(categories, fill_value=0).to_numpy()
    return np.concatenate([known, [int((~present.isin(categories)).sum()), int(missing.sum())]])


def numeric_values(column: pd.Series | np.ndarray) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values."""
    return pd.to_numeric(pd.Series(column), errors="raise").to_numpy(dtype=float, na_value=np.nan)


def _numeric_entry(values: np.ndarray, bins: int) -> dict[str, Any]:
    edges = quantile_edges(values, bins)
    counts = numeric_counts(values, edges) / max(values.size, 1)
    present = values[~np.isnan(values)]
    return {
        "kind": "numeric",
        "edges": edges,
        "proportions": [float(c) for c in counts[:-1]],
        "missing_rate": float(counts[-1]),
        "min": float(present.min()) if present.size else None,
        "max": float(present.max()) if present.size else None,
    }


def _categorical_entry(values: pd.Series) -> dict[str, Any]:
    shares = values.dropna().astype(str).value_counts() / len(values)
    return {
        "kind": "categorical",
        "frequencies": {str(k): float(v) for k, v in shares.sort_index().items()},
        "missing_rate": float(values.isna().mean()),
    }


def build_reference(
    train: pd.DataFrame,
    oof_predictions: np.ndarray,
    test_metrics: dict[str, float],
    data: DataConfig,
    bins: int,
) -> Reference:
    """The reference of a model trained on `train`: feature and out-of-fold prediction distributions, test metrics."""
    features: dict[str, Any] = {}
    for name in data.features():
        if data.columns[name].role == "categorical":
            features[name] = _categorical_entry(train[name])
        else:
            features[name] = _numeric_entry(numeric_values(train[name]), bins)
    predictions = np.asarray(oof_predictions, dtype=float).ravel()
    if predictions.size != len(train):
        raise ValueError(f"oof_predictions has {predictions.size} values for {len(train)} training rows")
    reference = {
        "schema": SCHEMA,
        "rows": len(train),
        "bins": bins,
        "target": data.target,
        "features": features,
        "predictions": _numeric_entry(predictions, bins),
        "test_metrics": {k: float(v) for k, v in test_metrics.items()},
    }
    return load_reference(reference)


def _fail(key: str, value: Any, expected: str) -> MonitoringReferenceError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return MonitoringReferenceError(
        f"monitoring reference key '{key}' = {shown} is not allowed: expected {expected}; "
        "re-register the model to rebuild its reference"
    )


def _get(node: dict[str, Any], key: str, path: str) -> Any:
    if key not in node:
        raise MonitoringReferenceError(
            f"monitoring reference has no key '{path}': re-register the model to rebuild its reference"
        )
    return node[key]


def _is_share(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def _check_shares(shares: list[Any], missing: Any, path: str) -> None:
    for i, share in enumerate(shares):
        if not _is_share(share):
            raise _fail(f"{path}[{i}]", share, "a share in [0, 1]")
    if not math.isclose(sum(shares) + missing, 1.0, abs_tol=1e-6):
        raise _fail(path, shares, f"shares that sum to 1 with missing_rate {missing}")


def _check_entry(entry: Any, path: str) -> None:
    if not isinstance(entry, dict):
        raise _fail(path, entry, "a mapping")
    kind = _get(entry, "kind", f"{path}.kind")
    if kind not in KINDS:
        raise _fail(f"{path}.kind", kind, " | ".join(KINDS))
    missing = _get(entry, "missing_rate", f"{path}.missing_rate")
    if not _is_share(missing):
        raise _fail(f"{path}.missing_rate", missing, "a share in [0, 1]")
    if kind == "categorical":
        frequencies = _get(entry, "frequencies", f"{path}.frequencies")
        if not isinstance(frequencies, dict) or not all(isinstance(k, str) for k in frequencies):
            raise _fail(f"{path}.frequencies", frequencies, "a mapping of category to share")
        _check_shares(list(frequencies.values()), missing, f"{path}.frequencies")
        return
    edges = _get(entry, "edges", f"{path}.edges")
    numbers = isinstance(edges, list) and all(isinstance(e, int | float) and math.isfinite(e) for e in edges)
    if not numbers or any(a >= b for a, b in itertools.pairwise(edges)):
        raise _fail(f"{path}.edges", edges, "a list of increasing finite numbers")
    proportions = _get(entry, "proportions", f"{path}.proportions")
    if not isinstance(proportions, list) or len(proportions) != len(edges) + 1:
        raise _fail(f"{path}.proportions", proportions, f"a list of {len(edges) + 1} shares (one more than edges)")
    _check_shares(proportions, missing, f"{path}.proportions")
    low, high = _get(entry, "min", f"{path}.min"), _get(entry, "max", f"{path}.max")
    if (low is None) != (high is None) or (low is not None and not low <= high):
        raise _fail(f"{path}.min", low, f"a number <= max ({high}), or both null when every value is missing")


def load_reference(raw: Any) -> Reference:
    """`raw` checked against schema 1: raises MonitoringReferenceError naming the first bad key."""
    if not isinstance(raw, dict):
        raise _fail("(root)", raw, "a mapping")
    if "schema" not in raw:
        raise MonitoringReferenceError(
            "monitoring reference has no key 'schema': the model was registered before references "
            "existed; re-register it to build one"
        )
    if raw["schema"] != SCHEMA:
        raise _fail("schema", raw["schema"], f"{SCHEMA}, the version this code reads")
    rows = _get(raw, "rows", "rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise _fail("rows", rows, "a row count >= 1")
    for key in ("bins", "target"):
        _get(raw, key, key)
    features = _get(raw, "features", "features")
    if not isinstance(features, dict) or not features:
        raise _fail("features", features, "a non-empty mapping of feature name to its distribution")
    for name, entry in features.items():
        _check_entry(entry, f"features.{name}")
    predictions = _get(raw, "predictions", "predictions")
    _check_entry(predictions, "predictions")
    if predictions["kind"] != "numeric":
        raise _fail("predictions.kind", predictions["kind"], "numeric")
    metrics = _get(raw, "test_metrics", "test_metrics")
    for name in REQUIRED_METRICS:
        value = _get(metrics, name, f"test_metrics.{name}")
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise _fail(f"test_metrics.{name}", value, "a finite number >= 0")
    return raw
