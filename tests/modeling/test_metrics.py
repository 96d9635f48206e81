"""Each metric against values computed by hand."""

import math

import numpy as np
import pytest

from housing_mlops.modeling.metrics import (
    evaluate,
    mae,
    mape,
    median_ape,
    r2,
    resampled_wmape,
    rmse,
    smape,
    within,
    wmape,
)

Y = [100.0, 200.0, 400.0]
P = [110.0, 180.0, 400.0]  # errors 10, 20, 0; APE 0.10, 0.10, 0


def test_hand_computed_values() -> None:
    assert mae(Y, P) == pytest.approx(10.0)
    assert rmse(Y, P) == pytest.approx(math.sqrt((100 + 400) / 3))
    assert wmape(Y, P) == pytest.approx(30 / 700)
    assert mape(Y, P) == pytest.approx(0.2 / 3)
    assert median_ape(Y, P) == pytest.approx(0.10)
    assert smape(Y, P) == pytest.approx((20 / 210 + 40 / 380 + 0) / 3)
    mean = 700 / 3
    total = sum((y - mean) ** 2 for y in Y)
    assert r2(Y, P) == pytest.approx(1 - 500 / total)
    assert within(0.05)(Y, P) == pytest.approx(1 / 3)
    assert within(0.10)(Y, P) == pytest.approx(1.0)  # 0.10 itself is within 10 %


def test_wmape_is_mae_over_mean_absolute_target() -> None:
    assert wmape(Y, P) == pytest.approx(mae(Y, P) / (700 / 3))


def test_resampled_wmape_scores_each_row_of_row_numbers() -> None:
    rows = np.array([[0, 1, 2], [2, 2, 2], [1, 1, 0]])
    found = resampled_wmape(Y, P, rows)
    np.testing.assert_allclose(found, [30 / 700, 0.0, 50 / 500])
    # a resample that drew only zero targets has no wMAPE
    zero_only, both = resampled_wmape([0.0, 100.0], [5.0, 90.0], np.array([[0, 0], [0, 1]]))
    assert math.isnan(zero_only)
    assert both == pytest.approx(15 / 100)


def test_zero_targets_are_explicit() -> None:
    y, p = [0.0, 100.0], [5.0, 90.0]
    assert mape(y, p) == pytest.approx(0.10)  # the zero-target row is skipped
    assert wmape(y, p) == pytest.approx(15 / 100)
    assert smape([0.0], [0.0]) == 0.0
    assert math.isnan(mape([0.0], [1.0]))
    assert math.isnan(wmape([0.0], [1.0]))


def test_negative_targets_use_absolute_values() -> None:
    assert wmape([-100.0, 100.0], [-90.0, 110.0]) == pytest.approx(20 / 200)
    assert mape([-100.0], [-90.0]) == pytest.approx(0.10)


def test_perfect_predictions_and_bad_shapes() -> None:
    scores = evaluate(Y, Y)
    assert scores["wmape"] == 0
    assert scores["r2"] == 1
    assert scores["within_5pct"] == 1
    with pytest.raises(ValueError, match="equal length"):
        wmape([1.0, 2.0], [1.0])
