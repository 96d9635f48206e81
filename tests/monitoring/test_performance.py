"""Performance: scaled prices are `degraded` beyond the interval, the unscaled test set is not."""

import numpy as np
import pytest

from housing_mlops.config.schema import Config
from housing_mlops.modeling.metrics import mae, rmse, wmape
from housing_mlops.monitoring.performance import performance_of
from tests.monitoring.conftest import Fitted


@pytest.fixture(scope="module")
def predicted(cfg: Config, fitted: Fitted) -> tuple[np.ndarray, np.ndarray]:
    return fitted.test[cfg.data.target].to_numpy(), fitted.predict(fitted.test[cfg.data.features()])


def test_the_unscaled_test_set_is_not_degraded(cfg: Config, fitted: Fitted, predicted) -> None:
    y, p = predicted
    report = performance_of(y, p, fitted.reference["test_metrics"], cfg.monitor)
    assert not report.degraded
    assert report.metrics["wmape"].value == pytest.approx(fitted.reference["test_metrics"]["wmape"])
    for name, metric in (("wmape", wmape), ("rmse", rmse), ("mae", mae)):
        interval = report.metrics[name]
        assert interval.low < interval.value == metric(y, p) < interval.high
    assert report.limit == pytest.approx(fitted.reference["test_metrics"]["wmape"] * (1 + cfg.monitor.tolerance))


def test_prices_scaled_by_the_calibration_factor_are_degraded(cfg: Config, fitted: Fitted, predicted) -> None:
    y, p = predicted
    report = performance_of(y * cfg.monitor.calibration.target_factor, p, fitted.reference["test_metrics"], cfg.monitor)
    assert report.degraded
    assert report.metrics["wmape"].low > report.limit


def test_the_interval_is_seeded(cfg: Config, fitted: Fitted, predicted) -> None:
    y, p = predicted
    first, again = (performance_of(y, p, fitted.reference["test_metrics"], cfg.monitor) for _ in range(2))
    assert first == again
