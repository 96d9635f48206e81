"""The verdict: degraded outranks drift outranks ok; the report is JSON; fail_on; bad batches."""

import dataclasses
import json

import numpy as np
import pytest

from housing_mlops.config.schema import Config
from housing_mlops.errors import SchemaError
from housing_mlops.monitoring.calibration import calibrate, shifted_batches
from housing_mlops.monitoring.check import check
from housing_mlops.monitoring.verdict import VERDICTS, fails
from tests.monitoring.conftest import Fitted


def test_degraded_outranks_drift_and_keeps_both_reasons(cfg: Config, fitted: Fitted) -> None:
    # income x 1.3 with its labels: the inputs drifted and the model overprices
    cal = cfg.monitor.calibration
    batch = fitted.test.assign(**{cal.scale_column: fitted.test[cal.scale_column] * cal.scale_factor})
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    assert report.verdict == "degraded"
    assert any("wMAPE" in r for r in report.reasons)
    assert any("features drifted" in r for r in report.reasons)


def test_labels_alone_can_degrade_a_batch_that_did_not_drift(cfg: Config, fitted: Fitted) -> None:
    batch, expected = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["median_house_value x 1.25 (labelled)"]
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    assert (report.verdict, expected) == ("degraded", "degraded")
    assert report.drift.drifted == []
    assert len(report.reasons) == 1


def test_the_report_is_plain_json(cfg: Config, fitted: Fitted) -> None:
    batch, _ = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["longitude+latitude + 1.0"]
    plain = check(batch.assign(note="x"), fitted.reference, fitted.predict, cfg.monitor).to_dict()
    again = json.loads(json.dumps(plain, allow_nan=False))
    assert again["verdict"] == "drift"
    assert again["performance"] is None
    assert again["ignored_columns"] == ["note"]
    assert set(again["drift"]["drifted"]) == {"longitude", "latitude"}
    assert again["drift"]["features"]["latitude"]["out_of_range"] > 0


@pytest.mark.parametrize(
    ("fail_on", "failing"),
    [("degraded", {"degraded"}), ("drift", {"drift", "degraded"}), ("never", set())],
)
def test_fail_on_picks_the_failing_verdicts(fail_on: str, failing: set[str]) -> None:
    assert {v for v in VERDICTS if fails(v, fail_on)} == failing


def test_calibration_counts_resample_verdicts_and_reports_every_shift(cfg: Config, fitted: Fitted) -> None:
    few = dataclasses.replace(cfg.monitor, calibration=dataclasses.replace(cfg.monitor.calibration, resamples=5))
    result = calibrate(fitted.reference, fitted.test, fitted.predict, few)
    assert result.resamples == {"ok": 5, "drift": 0, "degraded": 0}
    assert {n: r.verdict for n, r in result.shifts.items()} == result.expected
    assert json.dumps(result.to_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.head(10), r"batch has 10 rows: monitoring needs at least monitor.min_rows = 200"),
        (lambda b: b.drop(columns="median_income"), r"batch lacks feature column\(s\) \['median_income'\]"),
        (
            lambda b: b.astype({"population": object}).assign(population=["many", *b.population[1:]]),
            r"batch column 'population' holds text: row 0 = 'many'",
        ),
        (
            lambda b: b.assign(median_house_value=-b.median_house_value),
            r"target column 'median_house_value' is negative",
        ),
    ],
)
def test_a_bad_batch_fails_naming_the_problem(cfg: Config, fitted: Fitted, change, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as info:
        check(change(fitted.test.copy()), fitted.reference, fitted.predict, cfg.monitor)
    assert "\n" not in str(info.value)


def test_a_batch_without_enough_labels_is_judged_on_drift(cfg: Config, fitted: Fitted) -> None:
    batch = fitted.test.assign(
        median_house_value=np.where(np.arange(len(fitted.test)) < 100, fitted.test.median_house_value, np.nan)
    )
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    assert report.performance is None
    assert report.verdict == "ok"
