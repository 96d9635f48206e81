"""Data and prediction drift of a batch against the reference, on the reference's own bins.

Per feature: PSI (the size of the shift) and a two-sample chi-square test of the batch's bin counts
against the training counts (whether it is more than noise); the feature drifts when PSI exceeds
monitor.psi_threshold and p < monitor.p_value. Missing values are a bin of their own, and so are
unseen categories, so a rise of either is drift. The Jensen-Shannon distance is reported beside.
"""

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency

from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.monitoring.reference import Reference, category_counts, numeric_counts, numeric_values

# Share a PSI term uses for an empty bin (PSI is infinite on a share of 0); 1e-4 is the usual floor.
EMPTY_BIN_SHARE = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the predictions) of a batch against its reference distribution."""

    name: str
    kind: str
    psi: float
    js_distance: float
    chi2: float
    p_value: float
    drifted: bool
    missing_rate: float
    reference_missing_rate: float
    out_of_range: int  # numeric: values outside the training [min, max]
    unseen: int  # categorical: values of a category training never saw
    examples: list[Any] = field(default_factory=list)  # up to monitor.examples of those values


@dataclass(frozen=True)
class DriftReport:
    """Every feature's drift, the predictions' drift and the share of features that drifted."""

    rows: int
    features: dict[str, FeatureDrift]
    prediction: FeatureDrift
    share_drifted: float

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features, the largest PSI first."""
        found = [f for f in self.features.values() if f.drifted]
        return [f.name for f in sorted(found, key=lambda f: -f.psi)]


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    e, a = np.maximum(expected, EMPTY_BIN_SHARE), np.maximum(actual, EMPTY_BIN_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def chi2_test(reference_counts: np.ndarray, batch_counts: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the two-sample chi-square test on the bins either sample fills."""
    table = np.vstack([reference_counts, batch_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _compare(
    expected: np.ndarray, counts: np.ndarray, reference_rows: int, cfg: MonitorConfig
) -> tuple[float, float, float, float, bool]:
    actual = counts / max(counts.sum(), 1)
    score = psi(expected, actual)
    distance = float(jensenshannon(expected, actual, base=2)) if actual.sum() > 0 else 0.0
    statistic, p_value = chi2_test(expected * reference_rows, counts)
    return score, distance, statistic, p_value, bool(score > cfg.psi_threshold and p_value < cfg.p_value)


def numeric_drift(
    name: str, values: np.ndarray, entry: dict[str, Any], reference_rows: int, cfg: MonitorConfig
) -> FeatureDrift:
    """Drift of numeric values against a numeric reference entry."""
    expected = np.append(entry["proportions"], entry["missing_rate"])
    counts = numeric_counts(values, entry["edges"])
    score, distance, statistic, p_value, drifted = _compare(expected, counts, reference_rows, cfg)
    present = values[~np.isnan(values)]
    outside = present[(present < entry["min"]) | (present > entry["max"])] if entry["min"] is not None else present
    return FeatureDrift(
        name=name,
        kind="numeric",
        psi=score,
        js_distance=distance,
        chi2=statistic,
        p_value=p_value,
        drifted=drifted,
        missing_rate=float(np.isnan(values).mean()) if values.size else 0.0,
        reference_missing_rate=entry["missing_rate"],
        out_of_range=int(outside.size),
        unseen=0,
        examples=[float(v) for v in pd.unique(outside)[: cfg.examples]],
    )


def categorical_drift(
    name: str, values: pd.Series, entry: dict[str, Any], reference_rows: int, cfg: MonitorConfig
) -> FeatureDrift:
    """Drift of categories against a categorical reference entry."""
    categories = list(entry["frequencies"])
    expected = np.array([*entry["frequencies"].values(), 0.0, entry["missing_rate"]])
    counts = category_counts(values, categories)
    score, distance, statistic, p_value, drifted = _compare(expected, counts, reference_rows, cfg)
    present = values.dropna().astype(str)
    unseen = present[~present.isin(categories)]
    return FeatureDrift(
        name=name,
        kind="categorical",
        psi=score,
        js_distance=distance,
        chi2=statistic,
        p_value=p_value,
        drifted=drifted,
        missing_rate=float(values.isna().mean()) if len(values) else 0.0,
        reference_missing_rate=entry["missing_rate"],
        out_of_range=0,
        unseen=int(unseen.size),
        examples=[str(v) for v in pd.unique(unseen)[: cfg.examples]],
    )


def drift_of(batch: pd.DataFrame, predictions: np.ndarray, reference: Reference, cfg: MonitorConfig) -> DriftReport:
    """Drift of every reference feature of `batch`, and of the model's `predictions` on it."""
    rows = reference["rows"]
    features = {}
    for name, entry in reference["features"].items():
        if entry["kind"] == "categorical":
            features[name] = categorical_drift(name, batch[name], entry, rows, cfg)
        else:
            features[name] = numeric_drift(name, numeric_values(batch[name]), entry, rows, cfg)
    prediction = numeric_drift("prediction", numeric_values(predictions), reference["predictions"], rows, cfg)
    share = sum(f.drifted for f in features.values()) / len(features)
    return DriftReport(rows=len(batch), features=features, prediction=prediction, share_drifted=share)


def bin_shares(values: pd.Series | np.ndarray, entry: dict[str, Any]) -> pd.DataFrame:
    """The reference's bins with their training share and the batch's share (for the report's plots).

    One row per bin, `bin` labelled by its range or category, missing values (and unseen
    categories) as bins of their own, as the drift test counts them.
    """
    if entry["kind"] == "categorical":
        categories = list(entry["frequencies"])
        labels = [*categories, "(unseen)", "(missing)"]
        expected = [*entry["frequencies"].values(), 0.0, entry["missing_rate"]]
        counts = category_counts(pd.Series(values), categories)
    else:
        edges = [f"{e:.4g}" for e in entry["edges"]]
        bounds = ["-inf", *edges, "inf"]
        labels = [f"({lo}, {hi}]" for lo, hi in itertools.pairwise(bounds)] + ["(missing)"]
        expected = [*entry["proportions"], entry["missing_rate"]]
        counts = numeric_counts(numeric_values(values), entry["edges"])
    return pd.DataFrame({"bin": labels, "reference": expected, "batch": counts / max(counts.sum(), 1)})
