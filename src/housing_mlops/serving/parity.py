"""Parity of the compiled variant with the sklearn Pipeline, measured on the rows that matter."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

UNSEEN = "__unseen_category__"  # a category no model was trained on


@dataclass(frozen=True)
class Parity:
    """How far the compiled predictions are from sklearn's, and on how many rows."""

    passed: bool
    max_rel_error: float
    rows: int
    reason: str  # one line: what was measured, or what disagreed


def odd_rows(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Rows the test set may lack: NaN in every numeric column, an unseen category, both."""
    base = frame.head(3).copy()
    base.loc[base.index[0], numeric] = np.nan
    base.loc[base.index[1], categorical] = UNSEEN
    base.loc[base.index[2], numeric] = np.nan
    base.loc[base.index[2], categorical] = UNSEEN
    return base.reset_index(drop=True)


def row_by_row(predict: Callable[[pd.DataFrame], np.ndarray]) -> Callable[[pd.DataFrame], np.ndarray]:
    """`predict` called on each row alone, as a server answering single-row requests calls it."""

    def alone(frame: pd.DataFrame) -> np.ndarray:
        return np.array([np.asarray(predict(frame.iloc[[i]]), dtype=np.float64).item() for i in range(len(frame))])

    return alone


def check(
    expected: Callable[[pd.DataFrame], np.ndarray],
    actual: Callable[[pd.DataFrame], np.ndarray],
    batches: dict[str, pd.DataFrame],
    tolerance: float,
    alone: tuple[str, ...] = (),
) -> Parity:
    """Compare `actual` with `expected` on every batch; pass if max relative error <= tolerance, no NaN.

    `batches` maps a name (said in the reason) to a frame; `actual` scores the batches named in
    `alone` one row at a time: a runtime may answer a row differently alone than in a batch (ONNX
    Runtime's kernels differ by an ulp with the batch size), and a stage may behave differently
    on one row (IterativeImputer on an all-missing batch).
    """
    worst, rows = 0.0, 0
    for name, batch in batches.items():
        want = np.asarray(expected(batch), dtype=np.float64).reshape(-1)
        got = np.asarray((row_by_row(actual) if name in alone else actual)(batch), dtype=np.float64).reshape(-1)
        rows += len(batch)
        if np.isnan(got).any() and not np.isnan(want).all():
            return Parity(False, float("nan"), rows, f"the compiled variant predicts NaN on {name}")
        error = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
        worst = max(worst, float(error.max(initial=0.0)))
        if worst > tolerance:
            row = int(np.argmax(error))
            return Parity(
                False,
                worst,
                rows,
                f"max relative error {worst:.3g} > serving.max_rel_error {tolerance:g} on {name} "
                f"(row {row}: sklearn {want[row]:.6g}, compiled {got[row]:.6g})",
            )
    return Parity(True, worst, rows, f"max relative error {worst:.3g} <= {tolerance:g} over {rows} rows")
