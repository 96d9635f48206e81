"""Against a live PostgreSQL: the pipeline over HTTP through an `mlflow server` backed by it, the
sweep's study shared in PostgreSQL by separately started processes, and the bad URLs a team
writes. One cluster and one server per session (tests/services.py); the smoke profile."""

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from tests.conftest import FAST_OPTIONS, MODEL, Store, assert_digests_match, make_store
from tests.services import PASSWORD, Postgres, TrackingServer, running_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
STEPS = ("ingest", "split", "impute", "features", "select", "sweep", "register")
# Fail in seconds when the server is gone (the Makefile's defaults, exported for `mlflow run`).
HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


@dataclass
class Services:
    postgres: Postgres
    server: TrackingServer
    optuna_db: str

    def optuna_url(self, password: str | None = None, database: str | None = None, scheme: str = "postgresql") -> str:
        return self.postgres.url(database or self.optuna_db, password, scheme)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    with running_postgres() as postgres:
        mlflow_db = postgres.create_database("mlflow")
        optuna_db = postgres.create_database("optuna")
        server = TrackingServer(postgres.url(mlflow_db), tmp_path_factory.mktemp("tracking-server"))
        server.start()
        try:
            yield Services(postgres, server, optuna_db)
        finally:
            server.kill()


def server_store(services: Services, sample_csv: Path, folder: Path) -> Store:
    """A Store whose `mlflow run`s log to the tracking server over HTTP.

    The study database's password comes from PGPASSWORD (libpq reads it), never from the URL:
    `mlflow run` prints its parameters and logs them on the runs, sweep.storage included.
    """
    base = make_store(folder, sample_csv)
    env = {**base.env, "MLFLOW_TRACKING_URI": services.server.uri, "PGPASSWORD": services.postgres.password}
    return Store(services.server.uri, env | HTTP_RETRIES)


def pipeline_hydra(services: Services) -> str:
    return f"{FAST_OPTIONS} sweep.storage={services.optuna_url(password='')}"


@dataclass(frozen=True)
class FirstRun:
    store: Store
    done: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def first_run(services: Services, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """The whole pipeline on the sample, once, against the server."""
    store = server_store(services, sample_csv, tmp_path_factory.mktemp("pg-first"))
    return FirstRun(store, store.mlflow_run(hydra=pipeline_hydra(services)))


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, "the database password leaked into the output"


def test_pipeline_over_http_logs_proxies_artifacts_registers_and_reuses(
    first_run: FirstRun, services: Services, tmp_path: Path
) -> None:
    store, client = first_run.store, first_run.store.client
    for step in STEPS:
        assert f"[{step}] running" in first_run.done.stdout, step
    assert_no_password(first_run.done.stdout, first_run.done.stderr)
    steps = {r.data.tags["housing.step"]: r for r in store.runs() if "housing.step" in r.data.tags}
    assert set(steps) == set(STEPS)
    for name, run in steps.items():
        assert run.info.status == "FINISHED", name
        # artifacts go through the server's proxy into its --artifacts-destination
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
        assert_digests_match(store, run, tmp_path)
    proxied = {p.name for p in services.server.artifacts.rglob("*") if p.is_file()}
    assert {"raw.parquet", "train.parquet", "best_params.yaml", "promotion.json"} <= proxied

    # the study lives in PostgreSQL: every trial of the sweep is there
    sweep = steps["sweep"]
    study = optuna.load_study(study_name=sweep.data.params["study_name"], storage=services.optuna_url())
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == len(study.trials) == 4

    (v1,) = client.search_model_versions(f"name='{MODEL}'")
    assert v1.version == "1"
    assert v1.tags["housing.registration"] == "complete"
    for alias in ("champion", "challenger"):
        assert client.get_model_version_by_alias(MODEL, alias).version == "1"

    again = store.mlflow_run(hydra=pipeline_hydra(services))
    assert "running" not in again.stdout, again.stdout
    for step in STEPS:
        assert f"[{step}] cached" in again.stdout, step
        assert len(store.runs(step)) == 1, step
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    assert_no_password(again.stdout, again.stderr)
    for run in store.runs():
        assert_no_password(str(run.data.params), str(run.data.tags))

