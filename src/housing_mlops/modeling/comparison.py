"""Comparing two models on the same rows: a paired bootstrap interval of their wMAPE difference."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from housing_mlops.modeling.metrics import resampled_wmape, wmape

# index cells (resamples x rows) drawn at once: ~32 MB of int64 per chunk, whatever the test set
CHUNK_CELLS = 2**22


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval, low <= estimate <= high."""

    low: float
    estimate: float
    high: float


def paired_wmape_difference(
    y_true: ArrayLike,
    champion_pred: ArrayLike,
    challenger_pred: ArrayLike,
    resamples: int,
    confidence: float,
    seed: int,
) -> Interval:
    """Challenger wMAPE minus champion wMAPE on the same rows, with its paired bootstrap interval.

    Negative means the challenger is better. Each resample draws the rows (with replacement)
    once and scores both models on them, so errors the two models share cancel out of the
    difference; the interval is the `confidence` percentile interval of the `resamples`
    differences, drawn from a numpy Generator seeded with `seed`.

    Args:
        y_true: Targets of the rows.
        champion_pred: The champion's predictions of those rows.
        challenger_pred: The challenger's predictions of the same rows, in the same order.
        resamples: Number of bootstrap resamples (>= 1).
        confidence: Coverage of the interval, in (0, 1).
        seed: Seed of the row draws: equal inputs and seed give an equal interval.

    Returns:
        The difference on all rows and the interval's bounds.

    Raises:
        ValueError: Predictions and targets differ in length or are empty, `resamples` < 1, or
            `confidence` is outside (0, 1).
    """
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y = np.asarray(y_true, dtype=float).ravel()
    champion = np.asarray(champion_pred, dtype=float).ravel()
    challenger = np.asarray(challenger_pred, dtype=float).ravel()
    estimate = wmape(y, challenger) - wmape(y, champion)  # checks the lengths
    rng = np.random.default_rng(seed)
    step = max(1, CHUNK_CELLS // y.size)
    differences = np.empty(resamples)
    for start in range(0, resamples, step):
        rows = rng.integers(0, y.size, size=(min(step, resamples - start), y.size))
        differences[start : start + len(rows)] = resampled_wmape(y, challenger, rows) - resampled_wmape(
            y, champion, rows
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return Interval(float(low), float(estimate), float(high))
