"""The paired bootstrap interval of a wMAPE difference, on constructed predictions."""

import numpy as np
import pytest

from housing_mlops.modeling.comparison import Interval, paired_wmape_difference
from housing_mlops.modeling.metrics import wmape

ROWS = 400


@pytest.fixture
def y() -> np.ndarray:
    return np.random.default_rng(1).uniform(1e5, 5e5, ROWS)


def relative_errors(seed: int, scale: float = 0.25) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, scale, ROWS)


def interval(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, seed: int = 42) -> Interval:
    return paired_wmape_difference(y, champion, challenger, resamples=2000, confidence=0.95, seed=seed)


def test_identical_predictions_give_zero_everywhere(y: np.ndarray) -> None:
    predictions = y * (1 + relative_errors(2))
    assert interval(y, predictions, predictions) == Interval(0.0, 0.0, 0.0)


def test_the_estimate_is_the_difference_of_the_test_wmapes(y: np.ndarray) -> None:
    champion, challenger = y * (1 + relative_errors(2)), y * (1 + relative_errors(3))
    found = interval(y, champion, challenger)
    assert found.estimate == wmape(y, challenger) - wmape(y, champion)
    assert found.low <= found.estimate <= found.high


def test_a_challenger_better_on_every_row_has_a_wholly_negative_interval(y: np.ndarray) -> None:
    champion = y * (1 + relative_errors(2))
    challenger = y + 0.9 * (champion - y)  # every row's error 10 % smaller
    found = interval(y, champion, challenger)
    assert found.low <= found.estimate <= found.high < 0


def test_two_models_of_the_same_quality_straddle_zero(y: np.ndarray) -> None:
    # independent errors of the same size: the challenger looks 1.4 points better on these rows
    found = interval(y, y * (1 + relative_errors(2)), y * (1 + relative_errors(3)))
    assert found.estimate < -0.01
    assert found.low < 0 < found.high


def test_pairing_sees_a_small_consistent_gain_that_separate_intervals_miss(y: np.ndarray) -> None:
    # both models share the large per-row errors; the challenger's are 5 % smaller, plus a little
    # noise of its own (it is worse on some rows)
    shared = relative_errors(2)
    champion = y * (1 + shared)
    challenger = y * (1 + 0.95 * shared + relative_errors(3, scale=0.005))
    assert (np.abs(y - challenger) > np.abs(y - champion)).any()
    # each model's own interval (the difference to a perfect model) overlaps the other's
    alone = {name: interval(y, y, p) for name, p in (("champion", champion), ("challenger", challenger))}
    assert alone["challenger"].high > alone["champion"].low
    # scored on the same resampled rows, the difference is negative with 95 % confidence
    assert interval(y, champion, challenger).high < 0


def test_the_seed_fixes_the_interval(y: np.ndarray) -> None:
    champion, challenger = y * (1 + relative_errors(2)), y * (1 + relative_errors(3))
    first = interval(y, champion, challenger, seed=7)
    assert interval(y, champion, challenger, seed=7) == first
    other = interval(y, champion, challenger, seed=8)
    assert other.estimate == first.estimate  # the rows themselves do not depend on the seed
    assert (other.low, other.high) != (first.low, first.high)


def test_higher_confidence_widens_the_interval(y: np.ndarray) -> None:
    champion, challenger = y * (1 + relative_errors(2)), y * (1 + relative_errors(3))
    narrow = paired_wmape_difference(y, champion, challenger, 2000, 0.5, 42)
    wide = paired_wmape_difference(y, champion, challenger, 2000, 0.99, 42)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_more_resamples_than_one_chunk_holds(y: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    # the row draws are made in chunks of CHUNK_CELLS cells: a chunk of 10 resamples here
    monkeypatch.setattr("housing_mlops.modeling.comparison.CHUNK_CELLS", 10 * ROWS)
    champion, challenger = y * (1 + relative_errors(2)), y * (1 + relative_errors(3))
    found = paired_wmape_difference(y, champion, challenger, 105, 0.95, 42)
    assert found.low < found.estimate < found.high


@pytest.mark.parametrize(
    ("resamples", "confidence", "message"),
    [(0, 0.95, "resamples must be >= 1"), (100, 1.0, r"confidence must be in \(0, 1\)"), (100, 0.0, "confidence")],
)
def test_bad_arguments_are_refused(y: np.ndarray, resamples: int, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        paired_wmape_difference(y, y, y, resamples, confidence, 42)


def test_predictions_of_other_rows_are_refused(y: np.ndarray) -> None:
    with pytest.raises(ValueError, match="equal length"):
        paired_wmape_difference(y, y, y[:-1], 100, 0.95, 42)
