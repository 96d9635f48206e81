"""Drift: a resample of the test set is not drifted, each calibration shift is, and values outside
the training range and unseen categories are counted with examples."""

import numpy as np
import pandas as pd
import pytest

from housing_mlops.config.schema import Config
from housing_mlops.monitoring.calibration import shifted_batches
from housing_mlops.monitoring.check import check
from housing_mlops.monitoring.drift import bin_shares, drift_of, psi
from tests.monitoring.conftest import Fitted


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    even = np.full(4, 0.25)
    assert psi(even, even) == 0
    assert 0 < psi(even, np.array([0.3, 0.3, 0.2, 0.2])) < psi(even, np.array([0.7, 0.1, 0.1, 0.1]))


def test_a_resample_of_the_test_set_is_not_drifted(cfg: Config, fitted: Fitted) -> None:
    rows = np.random.default_rng(0).integers(0, len(fitted.test), len(fitted.test))
    batch = fitted.test.iloc[rows].reset_index(drop=True)
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    assert report.verdict == "ok", report.reasons
    assert report.drift.drifted == []
    assert not report.drift.prediction.drifted
    assert max(f.psi for f in report.drift.features.values()) < cfg.monitor.psi_threshold / 4


@pytest.mark.parametrize(
    ("shift", "features"),
    [
        ("only ocean_proximity = INLAND", {"ocean_proximity", "longitude", "latitude"}),
        ("median_income x 1.3", {"median_income"}),
        ("30% of total_bedrooms missing", {"total_bedrooms"}),
        ("longitude+latitude + 1.0", {"longitude", "latitude"}),
    ],
)
def test_each_shift_drifts_its_features(cfg: Config, fitted: Fitted, shift: str, features: set[str]) -> None:
    batch, expected = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)[shift]
    report = check(batch, fitted.reference, fitted.predict, cfg.monitor)
    assert (report.verdict, expected) == ("drift", "drift"), report.reasons
    assert features <= set(report.drift.drifted)
    assert report.performance is None  # shifted inputs are checked without labels


def test_missing_values_are_reported_against_the_reference(cfg: Config, fitted: Fitted) -> None:
    batch, _ = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["30% of total_bedrooms missing"]
    bedrooms = check(batch, fitted.reference, fitted.predict, cfg.monitor).drift.features["total_bedrooms"]
    assert bedrooms.missing_rate == pytest.approx(0.3, abs=0.02)
    assert bedrooms.reference_missing_rate == fitted.reference["features"]["total_bedrooms"]["missing_rate"] < 0.02


def test_out_of_range_values_and_unseen_categories_are_counted_with_examples(cfg: Config, fitted: Fitted) -> None:
    batch = fitted.test[cfg.data.features()].copy()
    before = drift_of(batch, fitted.predict(batch), fitted.reference, cfg.monitor).features["longitude"]
    batch.loc[:2, "ocean_proximity"] = "ON THE MOON"
    batch.loc[3, "ocean_proximity"] = "UNDER THE SEA"
    batch.loc[:1, "longitude"] = -130.0
    batch.loc[2, "longitude"] = -100.0
    drift = drift_of(batch, fitted.predict(batch), fitted.reference, cfg.monitor)
    ocean, longitude = drift.features["ocean_proximity"], drift.features["longitude"]
    assert (ocean.unseen, ocean.examples) == (4, ["ON THE MOON", "UNDER THE SEA"])
    # the reference comes from a 4,000-row sample of train: a few test rows lie outside it already
    assert longitude.out_of_range == before.out_of_range + 3
    assert longitude.examples[:2] == [-130.0, -100.0]
    assert not ocean.drifted  # four rows of 4,128 are reported, not drift


def test_examples_are_capped_by_config(cfg: Config, fitted: Fitted) -> None:
    batch = fitted.test[cfg.data.features()].copy()
    batch.loc[:19, "median_income"] = 100.0 + np.arange(20)
    income = drift_of(batch, fitted.predict(batch), fitted.reference, cfg.monitor).features["median_income"]
    assert income.out_of_range == 20
    assert len(income.examples) == cfg.monitor.examples


def test_a_batch_of_one_category_drifts_the_predictions(cfg: Config, fitted: Fitted) -> None:
    batch = fitted.test[fitted.test.ocean_proximity == "INLAND"][cfg.data.features()]
    drift = drift_of(batch, fitted.predict(batch), fitted.reference, cfg.monitor)
    assert drift.prediction.drifted
    assert drift.prediction.p_value < cfg.monitor.p_value
    assert isinstance(drift.prediction.psi, float)
    assert not pd.isna(drift.prediction.js_distance)


def test_bin_shares_are_the_counts_the_drift_test_uses(cfg: Config, fitted: Fitted) -> None:
    batch, _ = shifted_batches(fitted.test, cfg.data.target, cfg.monitor)["30% of total_bedrooms missing"]
    entry = fitted.reference["features"]["total_bedrooms"]
    shares = bin_shares(batch["total_bedrooms"], entry)
    assert len(shares) == len(entry["edges"]) + 2  # value bins, open at both ends, then missing
    assert shares["bin"].iloc[0].startswith("(-inf, ")
    assert shares["bin"].iloc[-2].endswith(", inf]")
    assert shares["bin"].iloc[-1] == "(missing)"
    assert shares["batch"].sum() == pytest.approx(1)
    assert shares["batch"].iloc[-1] == pytest.approx(batch["total_bedrooms"].isna().mean())
    assert shares["reference"].tolist() == [*entry["proportions"], entry["missing_rate"]]
    ocean = bin_shares(pd.Series(["INLAND", "MOON", None, "INLAND"]), fitted.reference["features"]["ocean_proximity"])
    assert dict(zip(ocean["bin"], ocean["batch"], strict=True))["INLAND"] == 0.5
    assert ocean.set_index("bin").loc[["(unseen)", "(missing)"], "batch"].tolist() == [0.25, 0.25]
