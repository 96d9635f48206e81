"""Calibration of the thresholds (issue 16, item 6): the monitor on batches whose answer is known.

Resamples of labelled rows from the training distribution (the sealed test set) should say `ok`;
each shift of config monitor.calibration should say `drift`, and scaled prices `degraded`. Shifted
inputs are checked without their labels, as a served batch comes; the resamples and the scaled
prices with them.
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from housing_mlops.config.checks import require
from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.monitoring.check import Predict, check
from housing_mlops.monitoring.reference import Reference
from housing_mlops.monitoring.verdict import VERDICTS, MonitorReport


@dataclass(frozen=True)
class Calibration:
    """Verdict counts over the resamples and the report of every shifted batch."""

    resamples: dict[str, int]
    shifts: dict[str, MonitorReport]
    expected: dict[str, str]  # the verdict each shift should get

    def to_dict(self) -> dict[str, Any]:
        """Counts, and per shift its verdict, the expected one and the drifted features (largest PSI first)."""
        return {
            "resamples": self.resamples,
            "shifts": {
                name: {
                    "verdict": report.verdict,
                    "expected": self.expected[name],
                    "drifted": {n: round(report.drift.features[n].psi, 3) for n in report.drift.drifted},
                    "prediction_psi": round(report.drift.prediction.psi, 3),
                    "wmape_low": None if report.performance is None else report.performance.metrics["wmape"].low,
                }
                for name, report in self.shifts.items()
            },
        }


def shifted_batches(rows: pd.DataFrame, target: str, cfg: MonitorConfig) -> dict[str, tuple[pd.DataFrame, str]]:
    """{name: (batch, expected verdict)} for each shift of monitor.calibration, built from `rows`."""
    cal, key = cfg.calibration, "monitor.calibration"
    for name in ("only_column", "scale_column", "missing_column"):
        column = getattr(cal, name)
        require(column in rows.columns, f"{key}.{name}", column, f"a column of the rows: {list(rows.columns)}")
    for column in cal.shift_columns:
        require(column in rows.columns, f"{key}.shift_columns", column, f"columns of the rows: {list(rows.columns)}")
    unlabelled = rows.drop(columns=target)
    only = unlabelled[unlabelled[cal.only_column].astype(str) == cal.only_value]
    scaled = unlabelled.assign(**{cal.scale_column: unlabelled[cal.scale_column] * cal.scale_factor})
    blank = np.random.default_rng(cal.seed).random(len(rows)) < cal.missing_share
    missing = unlabelled.assign(**{cal.missing_column: unlabelled[cal.missing_column].mask(blank)})
    moved = unlabelled.assign(**{c: unlabelled[c] + cal.shift_by for c in cal.shift_columns})
    prices = rows.assign(**{target: rows[target] * cal.target_factor})
    return {
        f"only {cal.only_column} = {cal.only_value}": (only, "drift"),
        f"{cal.scale_column} x {cal.scale_factor}": (scaled, "drift"),
        f"{cal.missing_share:.0%} of {cal.missing_column} missing": (missing, "drift"),
        f"{'+'.join(cal.shift_columns)} + {cal.shift_by}": (moved, "drift"),
        f"{target} x {cal.target_factor} (labelled)": (prices, "degraded"),
    }


def _lookup(predictions: np.ndarray) -> Predict:
    """A predict function that returns `predictions`, computed once for the batch it is given."""

    def predict(X: pd.DataFrame) -> np.ndarray:
        if len(X) != predictions.size:
            raise ValueError(f"{len(X)} rows given for {predictions.size} predictions")
        return predictions

    return predict


def calibrate(reference: Reference, rows: pd.DataFrame, predict: Predict, cfg: MonitorConfig) -> Calibration:
    """The monitor on monitor.calibration.resamples resamples of the labelled `rows` and on each shift.

    A resample draws len(rows) rows with replacement; the rows are scored once and the resamples
    reuse those predictions (the model is deterministic).
    """
    rows = rows.reset_index(drop=True)
    target = reference["target"]
    predicted = np.asarray(predict(rows[list(reference["features"])]), dtype=float).ravel()
    rng = np.random.default_rng(cfg.calibration.seed)
    counts: Counter[str] = Counter({v: 0 for v in VERDICTS})
    for _ in range(cfg.calibration.resamples):
        picked = rng.integers(0, len(rows), len(rows))
        batch = rows.iloc[picked].reset_index(drop=True)
        counts[check(batch, reference, _lookup(predicted[picked]), cfg).verdict] += 1
    shifts, expected = {}, {}
    for name, (batch, verdict) in shifted_batches(rows, target, cfg).items():
        shifts[name], expected[name] = check(batch, reference, predict, cfg), verdict
    return Calibration(dict(counts), shifts, expected)
