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
from steps import serve as serve_step

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
from housing_mlops.monitoring.inference_log import read_window
from housing_mlops.pipeline import logs, serve
from housing_mlops.pipeline.capture import capture_dir, log_dir
from tests.conftest import ROOT
from tests.services import free_port

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


def ours(err: str) -> list[str]:
    """The project's warning lines in `err` (MLflow's own log lines have a timestamp)."""
    return [line for line in err.splitlines() if line.startswith("warning: ")]


def register(name: str, X: pd.DataFrame, y: pd.Series, example: pd.DataFrame | None = None) -> str:
    """Another version of `name`: a LinearRegression on `X`'s columns, with an input example."""
    model = LinearRegression().fit(X.fillna(0), y)
    with mlflow.start_run(experiment_id="0"):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X.fillna(0))),
            input_example=X.head(2).fillna(0) if example is None else example,
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
            serialization_format="cloudpickle",
        )
    return str(info.registered_model_version)


def test_each_poll_swaps_a_new_champion_in_and_refuses_other_inputs_once(
    champion: tuple[str, pd.DataFrame, np.ndarray],
    full_data: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, rows, _ = champion
    client = MlflowClient()
    y = full_data["median_house_value"].head(300)
    same = register(name, full_data[NUMERIC].head(300), y)
    other = register(name, full_data[["median_income", "housing_median_age"]].head(300), y)
    server = serve.build(client, config(f"capture.path={tmp_path / 'log'}", "serving.poll_s=1"), ROOT)
    follower = server.follower
    assert follower is not None
    assert server.writer is not None
    capsys.readouterr()  # what registering printed
    with TestClient(server.app) as http:

        def version() -> str:
            return http.post("/invocations", json=split(rows)).headers["x-model-version"]

        follower.poll()  # champion still names the served version: nothing happens
        assert (version(), ours(capsys.readouterr().err)) == ("1", [])
        client.set_registered_model_alias(name, "champion", same)
        follower.poll()
        swap = capsys.readouterr().out
        assert f"serving v{same} instead of v1: champion was v1 at poll 1 and v{same} at poll 2; swapped" in swap
        assert version() == same
        client.set_registered_model_alias(name, "champion", other)
        follower.poll()
        follower.poll()  # the refused version again: neither loaded nor logged again
        assert ours(capsys.readouterr().err) == [
            f"warning: champion v{other} not served, still serving v{same}: its inputs differ from the served "
            "version's: missing longitude, latitude, total_rooms, total_bedrooms"
        ]
        assert version() == same
        client.set_registered_model_alias(name, "champion", "1")  # the rollback
        follower.poll()
        assert version() == "1"
    server.writer.close()
    captured = read_window(tmp_path / "log", "1h").rows
    assert list(captured.groupby("model_version").size().items()) == [("1", 2 * len(rows)), (same, 2 * len(rows))]


def test_a_fixed_model_uri_or_a_null_poll_is_never_followed(champion: tuple[str, pd.DataFrame, np.ndarray]) -> None:
    name = champion[0]
    assert serve.build(MlflowClient(), config(), ROOT).follower is not None  # the default follows
    assert serve.build(MlflowClient(), config("serving.poll_s=null"), ROOT).follower is None
    assert serve.build(MlflowClient(), config(), ROOT, f"models:/{name}/1").follower is None


def test_an_unreachable_registry_is_one_warning_however_many_polls(
    champion: tuple[str, pd.DataFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    server = serve.build(MlflowClient(), config("capture.enabled=false"), ROOT)
    closed = f"http://127.0.0.1:{free_port()}"
    follower = serve.Follower(MlflowClient(closed), champion[0], server.app, 1.0, None)
    for _ in range(3):
        follower.poll()
    assert ours(capsys.readouterr().err) == [
        f"warning: tracking server {closed} unreachable ([Errno 111] Connection refused); serving v1 until it is back"
    ]
    assert server.app.served.version == "1"


def test_a_bad_poll_interval_stops_make_serve_at_start_with_one_line_naming_the_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad in ("0", "-5"):
        try:
            assert serve_step.main(["--port", "1", "--hydra-options", f"serving.poll_s={bad}"]) == 1
        finally:
            logs.configure()  # the step configured logging for itself
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert "'serving.poll_s'" in err[0]
        assert err[0].startswith("error: [serve] config key 'serving.poll_s' = ")


def test_a_champion_that_cannot_score_its_own_input_example_is_refused_once(
    champion: tuple[str, pd.DataFrame, np.ndarray], full_data: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    name = champion[0]
    X = full_data[NUMERIC].head(300)
    broken = register(name, X, full_data["median_house_value"].head(300), X.head(2).drop(columns="median_income"))
    server = serve.build(MlflowClient(), config("capture.enabled=false", "serving.poll_s=1"), ROOT)
    assert server.follower is not None
    MlflowClient().set_registered_model_alias(name, "champion", broken)
    capsys.readouterr()
    server.follower.poll()
    server.follower.poll()
    (line,) = ours(capsys.readouterr().err)
    assert line.startswith(
        f"warning: champion v{broken} not served, still serving v1: models:/{name}/{broken} cannot score its own "
        "input example: "
    )
    assert server.app.served.version == "1"
