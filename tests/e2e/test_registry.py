"""The whole pipeline on the sample, then the registry: aliases, the gate, manual
promotion and rollback, batch prediction and the real `mlflow models serve`."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import BIN, FAST_OPTIONS, ROOT, SAMPLE_OPTIONS, Store, make_store

pytestmark = pytest.mark.e2e
MODEL = "housing_price_model"


def retrain(store: Store, summary: Path) -> subprocess.CompletedProcess:
    """Exactly what the retrain workflow runs: `make retrain`, with a job summary file."""
    venv = Path(sys.prefix)
    cmd = [
        "make",
        "-C",
        str(ROOT),
        f"VENV={venv}",
        "-o",
        f"{venv}/.installed",
        "retrain",
        f"HYDRA={SAMPLE_OPTIONS} {FAST_OPTIONS}",
        "TRIALS=4",
    ]
    env = {**store.env, "GITHUB_STEP_SUMMARY": str(summary)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Store:
    """One retraining on the sample: version 1, promoted to champion."""
    folder = tmp_path_factory.mktemp("registry")
    store = make_store(folder, sample_csv)
    retrain(store, folder / "summary-1.md")
    return store


def version(store: Store, alias: str) -> str:
    return str(store.client.get_model_version_by_alias(MODEL, alias).version)


@pytest.fixture(autouse=True)
def _in_process_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process MLflow calls (pyfunc, model info) read the module's store too."""
    if "trained" in request.fixturenames:
        store = request.getfixturevalue("trained")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
        mlflow.set_tracking_uri(store.uri)


def test_pipeline_registers_a_documented_champion(trained: Store, tmp_path: Path) -> None:
    client = trained.client
    steps = {r.data.tags["housing.step"]: r for r in trained.runs() if "housing.step" in r.data.tags}
    assert set(steps) == {"ingest", "split", "impute", "features", "select", "sweep", "register"}
    (parent,) = [r for r in trained.runs() if r.data.tags.get("housing.pipeline") == "true"]
    assert {r.data.tags["mlflow.parentRunId"] for r in steps.values()} == {parent.info.run_id}

    children = {r.data.tags["mlflow.parentRunId"] for r in trained.runs() if "mlflow.parentRunId" in r.data.tags}
    candidates = [r for r in trained.runs() if r.data.tags.get("mlflow.parentRunId") == steps["select"].info.run_id]
    assert len(candidates) == 5 and steps["select"].info.run_id in children
    trials = [r for r in trained.runs() if r.data.tags.get("mlflow.parentRunId") == steps["sweep"].info.run_id]
    assert len(trials) == 4

    best = yaml.safe_load(
        Path(client.download_artifacts(steps["sweep"].info.run_id, "best_params.yaml", str(tmp_path))).read_text()
    )
    assert best["cv"]["wmape"] <= best["grid_cv_wmape"]  # trial 0 is the grid winner: never worse
    assert best["grid_cv_wmape"] == pytest.approx(steps["sweep"].data.metrics["grid_cv_wmape"], abs=1e-6)
    assert best["study"]["trials"]["complete"] + best["study"]["trials"]["pruned"] <= 4

    assert version(trained, "champion") == version(trained, "challenger") == "1"
    v1 = client.get_model_version(MODEL, "1")
    for section in ("CV on train", "Promotion gate", "Hardware target", "Lineage", "sha256"):
        assert section in v1.description
    assert parent.info.run_id in v1.description
    for tag in (
        "test.wmape",
        "test.rmse",
        "algorithm",
        "data.sha256",
        "git.sha",
        "hardware.target",
        "hardware.latency_p95_ms",
        "hardware.size_mb",
        "hardware.isa",
        "hardware.cpu_model",
    ):
        assert tag in v1.tags, tag
    assert v1.tags["hardware.target"] in {"cpu", "cpu-amx", "gpu", "tpu", "edge"}
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert info.metadata["hardware"]["target"] == v1.tags["hardware.target"]
    assert {c["name"] for c in info.signature.inputs.to_dict()} >= {"total_bedrooms", "ocean_proximity"}
    promotion = client.download_artifacts(steps["register"].info.run_id, "promotion.json", str(tmp_path))
    assert json.loads(Path(promotion).read_text())["promote"] is True

    first = _summary(trained, 1)
    assert "| register | ran |" in first and "Promotion verdict:** promote" in first
    assert "Registered version:** `housing_price_model` v1 (new)" in first and "Hardware target:**" in first

    # nothing changed: every step cached, nothing new registered, the champion kept
    again = retrain(trained, _summary_path(trained, 2))
    assert "running" not in again.stdout
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    second = _summary(trained, 2)
    assert "Every step was cached" in second and "v1 (cached: nothing new registered)" in second
    assert "Champion now:** v1" in second and version(trained, "champion") == "1"


def _summary_path(store: Store, n: int) -> Path:
    return Path(store.uri.removeprefix("sqlite:///")).parent / f"summary-{n}.md"


def _summary(store: Store, n: int) -> str:
    return _summary_path(store, n).read_text()


def test_worse_model_never_becomes_champion_and_manual_moves(trained: Store, tmp_path: Path) -> None:
    # a deliberately degraded model: a heavily regularised linear model only
    degraded = f"{FAST_OPTIONS} models.candidates=[lasso] models.zoo.lasso.fast.alpha=[100000.0]"
    trained.mlflow_run(hydra=degraded)
    client = trained.client
    assert version(trained, "challenger") == "2" and version(trained, "champion") == "1"
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags["promotion.verdict"] == "hold" and "does not beat champion v1" in v2.tags["promotion.reason"]

    refused = trained.mlflow_run("-e", "promote", "-P", "version=2", check=False)
    assert refused.returncode != 0 and "gate refused v2" in refused.stderr
    assert version(trained, "champion") == "1"

    trained.mlflow_run("-e", "promote", "-P", "version=2", "-P", "force=true")
    assert version(trained, "champion") == "2"
    trained.mlflow_run("-e", "rollback")
    assert version(trained, "champion") == "1"
    assert json.loads(client.get_registered_model(MODEL).tags["champion_history"]) == ["1"]

    # a champion set by hand (as in the UI) is what predict uses
    client.set_registered_model_alias(MODEL, "champion", "2")
    sample = pd.read_csv(trained.env["HOUSING_DATA_SOURCE"]).head(20)
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    sample.drop(columns="median_house_value").to_csv(source, index=False)
    trained.mlflow_run("-e", "predict", "-P", f"input={source}", "-P", f"output={out}")
    scored = pd.read_csv(out)
    assert len(scored) == 20 and set(scored["model_version"].astype(str)) == {"2"}
    client.set_registered_model_alias(MODEL, "champion", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(store: Store) -> Iterator[str]:
    """The real `mlflow models serve` of models:/...@champion on a free loopback port."""
    port = free_port()
    env = {**store.env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not answer /ping within 90 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def server(trained: Store) -> Iterator[str]:
    with serving(trained) as url:
        yield url


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_served_champion_scores_rows_and_rejects_bad_input(trained: Store, server: str) -> None:
    rows = pd.read_csv(trained.env["HOUSING_DATA_SOURCE"]).drop(columns="median_house_value").head(200)
    status, body = post(server, json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode())
    assert status == 200
    predictions = body["predictions"]
    assert len(predictions) == 200 and all(10_000 < p < 1_000_000 for p in predictions)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version(trained, 'champion')}")
    assert predictions == pytest.approx(list(champion.predict(rows)), rel=1e-9)

    assert post(server, b"{not json")[0] == 400
    missing = rows.drop(columns="median_income")
    assert post(server, json.dumps({"dataframe_split": missing.to_dict(orient="split")}).encode())[0] == 400
    text = rows.astype({"median_income": object})
    text.loc[text.index[0], "median_income"] = "lots"
    assert post(server, json.dumps({"dataframe_split": text.to_dict(orient="split")}).encode())[0] == 400


def test_unseen_category_and_missing_values_are_served(trained: Store) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    rows = pd.read_csv(trained.env["HOUSING_DATA_SOURCE"]).drop(columns="median_house_value").head(3)
    odd = rows.assign(ocean_proximity="ON MARS", total_rooms=float("nan"))
    assert model.predict(odd).shape == (3,)


def test_serving_follows_the_champion_alias_after_promotion_and_rollback(trained: Store) -> None:
    """`make serve` resolves @champion when it starts: after a promotion or a rollback, a
    restarted server serves the version the alias points at (v2 is the degraded model above)."""
    rows = pd.read_csv(trained.env["HOUSING_DATA_SOURCE"]).drop(columns="median_house_value").head(50)
    body = json.dumps({"dataframe_split": rows.to_dict(orient="split")}).encode()
    expected = {v: list(mlflow.pyfunc.load_model(f"models:/{MODEL}/{v}").predict(rows)) for v in ("1", "2")}
    assert expected["1"] != pytest.approx(expected["2"], rel=1e-3), "the two versions must be told apart"

    def served() -> list[float]:
        with serving(trained) as url:
            status, answer = post(url, body)
        assert status == 200
        return answer["predictions"]

    assert version(trained, "champion") == "1"
    assert served() == pytest.approx(expected["1"], rel=1e-9)
    trained.mlflow_run("-e", "promote", "-P", "version=2", "-P", "force=true")
    assert served() == pytest.approx(expected["2"], rel=1e-9)
    trained.mlflow_run("-e", "rollback")
    assert version(trained, "champion") == "1"
    assert served() == pytest.approx(expected["1"], rel=1e-9)
