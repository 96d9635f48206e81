"""The capture benchmark on a tiny saved model: both servers answer alike, every request is captured."""

import os
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from benchmarks.capture import capture_overhead, table
from sklearn.linear_model import LinearRegression

pytestmark = pytest.mark.e2e  # starts two servers

NUMERIC = ["longitude", "latitude", "housing_median_age", "median_income"]


def test_capture_on_and_off_side_by_side(full_data: pd.DataFrame, tmp_path: Path) -> None:
    rows = full_data[NUMERIC].dropna().head(200)
    model = LinearRegression().fit(rows, full_data.loc[rows.index, "median_house_value"])
    mlflow.sklearn.save_model(
        model, tmp_path / "model", pip_requirements=["scikit-learn"], serialization_format="cloudpickle"
    )
    mlflow.search_experiments()  # creates the tracking DB: two servers creating it at once race
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = capture_overhead(str(tmp_path / "model"), rows, env, tmp_path / "work", calls=12)
    assert set(result["latency"]) == {"off", "on"}
    assert all(f["p50_ms"] > 0 for f in result["latency"].values())
    assert result["answers_differ"] == 0
    assert result["captured_rows"] == result["expected_rows"] == 32  # 20 warm-up calls + 12 timed
    assert "capture on vs off: p50" in table(result)
