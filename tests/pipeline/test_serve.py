"""`make serve` in process: MLflow's scoring app for a registered champion behind the capture
middleware, driven through Starlette's TestClient (no socket). MLflow's endpoints and errors stay
as they are; the version header is added; captured rows are what was sent and answered."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
from housing_mlops.monitoring.inference_log import read_window
from housing_mlops.pipeline import serve
from housing_mlops.pipeline.capture import capture_dir, log_dir
from tests.conftest import ROOT

NUMERIC = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "median_income"]


@pytest.fixture
def champion(full_data: pd.DataFrame) -> tuple[str, pd.DataFrame, np.ndarray]:
    """A tiny numeric model registered as v1 and made champion in this test's store."""
    cfg = load_config(ROOT / "config", [])[0]
    X, y = full_data[NUMERIC].head(500), full_data["median_house_value"].head(500)
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(X, y)
    # the Default experiment by id: mlflow.set_experiment in an earlier test of this worker leaves
    # its experiment id active, and that id does not exist in this test's store
    with mlflow.start_run(experiment_id="0"):
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            registered_model_name=cfg.registry.model_name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    MlflowClient().set_registered_model_alias(cfg.registry.model_name, "champion", "1")
    rows = full_data[NUMERIC].iloc[1000:1005].dropna()
    return cfg.registry.model_name, rows, model.predict(rows)


def config(*overrides: str) -> Config:
    return load_config(ROOT / "config", ["capture.enabled=true", "capture.flush_seconds=0.05", *overrides])[0]


def split(rows: pd.DataFrame) -> dict:
    return {"dataframe_split": rows.to_dict(orient="split", index=False)}


def test_the_served_champion_answers_as_mlflow_and_its_requests_are_captured(
    champion: tuple[str, pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    name, rows, expected = champion
    server = serve.build(MlflowClient(), config(f"capture.path={tmp_path / 'log'}"), ROOT)
    assert server.writer is not None
    with TestClient(server.app) as http:
        ping = http.get("/ping")
        assert (ping.status_code, ping.text, ping.headers["x-model-version"]) == (200, "\n", "1")
        assert http.get("/health").status_code == 200
        assert http.get("/version").text == mlflow.__version__
        answer = http.post("/invocations", json=split(rows))
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == "1"
        assert answer.json()["predictions"] == pytest.approx(list(expected), rel=1e-12)
        one = http.post("/invocations", json={"dataframe_records": rows.head(1).to_dict(orient="records")})
        assert one.json()["predictions"] == pytest.approx(list(expected[:1]), rel=1e-12)
        bad = http.post("/invocations", content=b"{not json", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        assert "error_code" in bad.json()
        assert http.post("/invocations", json=split(rows.drop(columns="median_income"))).status_code == 400
    server.writer.close()
    window = read_window(tmp_path / "log", "1h")
    got = window.rows
    assert (len(got), window.skipped) == (len(rows) + 1, [])
    pd.testing.assert_frame_equal(got[NUMERIC].head(len(rows)), rows.reset_index(drop=True), check_dtype=False)
    assert list(got["prediction"]) == [*answer.json()["predictions"], *one.json()["predictions"]]
    assert set(got["model_version"]) == {"1"}
    assert set(got["model_uri"]) == {f"models:/{name}/1"}
    assert set(got["source"]) == {"serve"}


def test_capture_into_an_unwritable_folder_still_answers(
    champion: tuple[str, pd.DataFrame, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, rows, expected = champion
    (tmp_path / "file").write_text("")
    server = serve.build(MlflowClient(), config(f"capture.path={tmp_path / 'file'}"), ROOT)
    with TestClient(server.app) as http:
        for _ in range(3):
            answer = http.post("/invocations", json=split(rows))
            assert answer.status_code == 200
            assert answer.json()["predictions"] == pytest.approx(list(expected), rel=1e-12)
    assert server.writer is not None
    server.writer.close()
    assert "warning: inference capture:" in capsys.readouterr().err
    assert server.writer.dropped == 3


def test_capture_off_adds_only_the_header_and_the_log_lives_beside_the_store(
    champion: tuple[str, pd.DataFrame, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOUSING_CAPTURE", raising=False)
    cfg = load_config(ROOT / "config", [])[0]
    assert capture_dir(cfg, ROOT) is None
    assert log_dir(cfg, ROOT) == tmp_path / "tracking" / "inference-log"  # beside this test's mlflow.db
    assert log_dir(config("capture.path=logs/x"), ROOT) == ROOT / "logs" / "x"
    monkeypatch.setenv("HOUSING_CAPTURE", "1")
    assert capture_dir(cfg, ROOT) == tmp_path / "tracking" / "inference-log"
    monkeypatch.delenv("HOUSING_CAPTURE")
    server = serve.build(MlflowClient(), cfg, ROOT)
    assert server.writer is None
    with TestClient(server.app) as http:
        assert http.post("/invocations", json=split(champion[1])).headers["x-model-version"] == "1"
    assert not (tmp_path / "tracking" / "inference-log").exists()
