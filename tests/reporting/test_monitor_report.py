"""The monitor's report: the HTML page and the job summary say the verdict, the reasons and the figures."""

import base64

import pandas as pd

from housing_mlops.config.schema import Config
from housing_mlops.monitoring.calibration import shifted_batches
from housing_mlops.monitoring.check import check
from housing_mlops.reporting.monitor_report import Subject, drift_table, markdown, page, performance_table
from tests.monitoring.conftest import Fitted, fitted  # noqa: F401  (the session's small model)

SUBJECT = Subject("housing_price_model", "3", "batch <1>.csv", "2026-12-05 10:00:00 UTC")


def test_a_drifted_batch_reads_drift_with_its_features_first(cfg: Config, fitted: Fitted) -> None:  # noqa: F811
    batch, _ = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["only ocean_proximity = INLAND"]
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    table = drift_table(report)
    assert table["feature"].iloc[0] == report.drift.drifted[0]
    assert table["drifted"].tolist() == sorted(table["drifted"].tolist(), reverse=True)
    assert set(table["feature"]) == {*cfg.data.features(), "prediction"}
    assert performance_table(report) is None  # no labels

    summary = markdown(report, SUBJECT)
    assert summary.startswith("## Monitor verdict: drift — housing_price_model v3 on ")
    for reason in report.reasons:
        assert f"- {reason}" in summary
    assert report.drift.drifted[0] in summary

    png = b"\x89PNG fake bytes"
    html = page(report, SUBJECT, {"ocean_proximity": png})
    assert "<title>Monitor verdict: drift" in html
    assert "batch &lt;1&gt;.csv" in html  # escaped
    assert base64.b64encode(png).decode() in html


def test_a_labelled_batch_shows_its_interval_beside_the_test_metrics(cfg: Config, fitted: Fitted) -> None:  # noqa: F811
    batch, _ = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["median_house_value x 1.25 (labelled)"]
    report = check(batch.assign(note="x"), fitted.reference, fitted.predict, cfg.monitor)
    table = performance_table(report)
    assert isinstance(table, pd.DataFrame)
    wmape = table.set_index("metric").loc["wmape"]
    assert wmape["interval low"] <= wmape["batch"] <= wmape["interval high"]
    assert wmape["registered test"] == round(fitted.reference["test_metrics"]["wmape"], 4)
    summary = markdown(report, SUBJECT)
    assert "Monitor verdict: degraded" in summary
    assert "Ignored columns (not features): note" in summary
