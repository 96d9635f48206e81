"""The reference: JSON round trip, its shape, and one error per malformed key, naming it."""

import copy
import json
from typing import Any

import numpy as np
import pytest

from housing_mlops.config.schema import Config
from housing_mlops.errors import MonitoringReferenceError
from housing_mlops.monitoring.reference import SCHEMA, build_reference, load_reference
from tests.monitoring.conftest import Fitted


def test_the_reference_survives_json_and_loads_unchanged(fitted: Fitted) -> None:
    text = json.dumps(fitted.reference, allow_nan=False)
    assert load_reference(json.loads(text)) == fitted.reference


def test_the_reference_holds_bins_frequencies_missing_rates_predictions_and_metrics(
    cfg: Config, fitted: Fitted
) -> None:
    ref = fitted.reference
    assert ref["schema"] == SCHEMA
    assert ref["rows"] == len(fitted.train)
    assert ref["target"] == cfg.data.target
    assert list(ref["features"]) == cfg.data.features()
    income = ref["features"]["median_income"]
    assert len(income["edges"]) == cfg.registry.reference.bins - 1
    assert np.allclose(income["proportions"], 1 / cfg.registry.reference.bins, atol=0.01)  # quantile bins
    assert sum(income["proportions"]) + income["missing_rate"] == pytest.approx(1)
    assert (income["min"], income["max"]) == (fitted.train.median_income.min(), fitted.train.median_income.max())
    bedrooms = ref["features"]["total_bedrooms"]
    assert bedrooms["missing_rate"] == pytest.approx(fitted.train.total_bedrooms.isna().mean())
    assert bedrooms["missing_rate"] > 0
    ocean = ref["features"]["ocean_proximity"]
    assert ocean["kind"] == "categorical"
    assert ocean["frequencies"]["INLAND"] == pytest.approx((fitted.train.ocean_proximity == "INLAND").mean())
    assert len(ref["predictions"]["edges"]) == cfg.registry.reference.bins - 1
    assert set(ref["test_metrics"]) >= {"wmape", "rmse", "mae"}


def test_predictions_must_match_the_training_rows(cfg: Config, fitted: Fitted) -> None:
    with pytest.raises(ValueError, match="3 values for 4000 training rows"):
        build_reference(
            fitted.train, np.zeros(3), fitted.reference["test_metrics"], cfg.data, cfg.registry.reference.bins
        )


def _without(ref: dict[str, Any], *path: str) -> dict[str, Any]:
    broken = copy.deepcopy(ref)
    node = broken
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return broken


def _with(ref: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    broken = copy.deepcopy(ref)
    node = broken
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return broken


def test_a_reference_without_a_schema_says_to_re_register(fitted: Fitted) -> None:
    with pytest.raises(MonitoringReferenceError, match="registered before references existed; re-register"):
        load_reference(_without(fitted.reference, "schema"))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda r: _with(r, 2, "schema"), "schema"),
        (lambda r: _with(r, 0, "rows"), "rows"),
        (lambda r: _without(r, "features"), "features"),
        (lambda r: _with(r, "ordinal", "features", "population", "kind"), "features.population.kind"),
        (lambda r: _with(r, [3.0, 2.0, 1.0], "features", "median_income", "edges"), "features.median_income.edges"),
        (lambda r: _with(r, [1.0], "features", "median_income", "proportions"), "features.median_income.proportions"),
        (lambda r: _with(r, 1.5, "features", "total_bedrooms", "missing_rate"), "features.total_bedrooms.missing_rate"),
        (
            lambda r: _with(r, {"INLAND": 0.5}, "features", "ocean_proximity", "frequencies"),
            "features.ocean_proximity.frequencies",
        ),
        (lambda r: _with(r, 1e9, "features", "longitude", "min"), "features.longitude.min"),
        (lambda r: _without(r, "predictions"), "predictions"),
        (lambda r: _without(r, "predictions", "edges"), "predictions.edges"),
        (lambda r: _without(r, "test_metrics", "wmape"), "test_metrics.wmape"),
        (lambda r: _with(r, float("nan"), "test_metrics", "rmse"), "test_metrics.rmse"),
    ],
)
def test_a_malformed_reference_names_the_key(fitted: Fitted, change: Any, key: str) -> None:
    with pytest.raises(MonitoringReferenceError, match=f"key '{key}'") as info:
        load_reference(change(fitted.reference))
    assert "\n" not in str(info.value)
    assert "re-register" in str(info.value)
