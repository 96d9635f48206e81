"""Against a live PostgreSQL: the pipeline over HTTP through an `mlflow server` backed by it, the
sweep's study shared in PostgreSQL by separately started processes, and the bad URLs a team
writes. One cluster and one server per session (tests/services.py); the smoke profile."""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest

from housing_mlops.pipeline.dag import STEPS
from tests.conftest import FAST_OPTIONS, MODEL, Store, assert_digests_match, make_store
from tests.services import Postgres, TrackingServer, running_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
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

    def assert_no_password(self, *texts: str) -> None:
        for text in texts:
            assert self.postgres.password not in text, "the database password leaked into the output"

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


def test_pipeline_over_http_logs_proxies_artifacts_registers_and_reuses(
    first_run: FirstRun, services: Services, tmp_path: Path
) -> None:
    store, client = first_run.store, first_run.store.client
    for step in STEPS:
        assert f"[{step}] running" in first_run.done.stdout, step
    services.assert_no_password(first_run.done.stdout, first_run.done.stderr)
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
    # the card exceeds PostgreSQL's VARCHAR(5000) only by its table padding: every section stays
    assert len(v1.description) <= 5000
    for section in ("Promotion gate", "Served variant", "Hardware target", "Lineage", "sha256"):
        assert section in v1.description, section
    register = steps["register"].info.run_id
    card = Path(client.download_artifacts(register, "model_card.md", str(tmp_path))).read_text()
    assert card.splitlines()[0] == v1.description.splitlines()[0]
    for alias in ("champion", "challenger"):
        assert client.get_model_version_by_alias(MODEL, alias).version == "1"

    again = store.mlflow_run(hydra=pipeline_hydra(services))
    assert "running" not in again.stdout, again.stdout
    for step in STEPS:
        assert f"[{step}] cached" in again.stdout, step
        assert len(store.runs(step)) == 1, step
    assert len(client.search_model_versions(f"name='{MODEL}'")) == 1
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"
    services.assert_no_password(again.stdout, again.stderr)
    for run in store.runs():
        services.assert_no_password(str(run.data.params), str(run.data.tags))


# -- the sweep's study shared in PostgreSQL ----------------------------------------------------
SWEEP_TRIALS = 6


def test_two_separately_started_sweeps_share_one_study_with_exactly_n_trials(
    first_run: FirstRun, services: Services, tmp_path: Path
) -> None:
    """Two `mlflow run . -e sweep` processes, each from its own directory (two machines in all but
    name), on one study in PostgreSQL: they split the budget, no trial is run twice or lost."""
    store = first_run.store
    hydra = f"{pipeline_hydra(services)} sweep.study_name=team-sweep sweep.n_trials={SWEEP_TRIALS} sweep.pruner=none"
    processes = []
    for machine in ("a", "b"):
        cwd = tmp_path / machine
        cwd.mkdir()
        command = store.command("-e", "sweep", "--experiment-name", "housing-mlops", hydra=hydra)
        processes.append(
            subprocess.Popen(command, env=store.env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
        services.assert_no_password(out, err)

    study = optuna.load_study(study_name="team-sweep", storage=services.optuna_url())
    assert sorted(t.number for t in study.trials) == list(range(SWEEP_TRIALS)), "no trial lost or run twice"
    assert all(t.state.is_finished() for t in study.trials)
    sweeps = [r for r in store.runs("sweep") if r.data.params.get("study_name") == "team-sweep"]
    assert len(sweeps) == 2
    assert all(r.info.status == "FINISHED" for r in sweeps)
    trial_runs = [r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") in {s.info.run_id for s in sweeps}]
    numbers = sorted(int(r.data.tags["housing.trial"]) for r in trial_runs)
    assert numbers == list(range(SWEEP_TRIALS)), "each trial logged once, by the process that ran it"


# -- bad inputs: one line, the password masked, nothing written --------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong password", "password authentication failed for user"),
        ("unknown database", 'database "no_such_db" does not exist'),
        ("server down", "Connection refused"),
    ],
)
def test_a_study_database_that_cannot_be_opened_is_one_line_with_the_password_masked(
    services: Services, case: str, expected: str
) -> None:
    from housing_mlops.errors import StudyStorageError
    from housing_mlops.modeling import study_store
    from tests.services import free_port

    pg = services.postgres
    url = {
        "wrong password": pg.url(services.optuna_db, password="Wrong-Secret-1"),
        "unknown database": pg.url("no_such_db"),
        "server down": f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{free_port()}/optuna",
    }[case]
    with pytest.raises(StudyStorageError) as info:
        study_store.open_storage(url, heartbeat_s=10)
    message = str(info.value)
    assert "\n" not in message
    assert expected in message
    assert message.startswith(f"sweep.storage postgresql://{pg.user}:***@")
    services.assert_no_password(message)
    assert "Wrong-Secret-1" not in message


def test_a_study_created_to_maximize_is_refused_by_name(services: Services) -> None:
    from housing_mlops.errors import StudyStorageError
    from housing_mlops.modeling import study_store

    url = services.optuna_url()
    optuna.create_study(storage=url, study_name="maximised", direction="maximize")
    study = optuna.load_study(study_name="maximised", storage=study_store.open_storage(url, heartbeat_s=10))
    with pytest.raises(
        StudyStorageError, match=rf"study 'maximised' in sweep.storage postgresql://{services.postgres.user}:\*\*\*@"
    ) as info:
        study_store.check_direction(study, url)
    assert "was created to maximize" in str(info.value)
    assert "set another sweep.study_name" in str(info.value)


def test_the_sweep_step_with_a_wrong_password_fails_one_line_and_registers_nothing(
    first_run: FirstRun, services: Services
) -> None:
    store = first_run.store
    versions = len(store.client.search_model_versions(f"name='{MODEL}'"))
    wrong = services.optuna_url(password="Wrong-Secret-1")
    done = store.mlflow_run(
        "-e", "sweep", "--experiment-name", "housing-mlops", hydra=f"{FAST_OPTIONS} sweep.storage={wrong}", check=False
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "password authentication failed" in errors[0]
    assert f"postgresql://{services.postgres.user}:***@" in errors[0]
    assert "Wrong-Secret-1" not in errors[0]
    assert "Traceback" not in done.stderr
    services.assert_no_password(done.stdout, done.stderr)
    failed = store.runs("sweep")[0]
    assert failed.info.status == "FAILED"
    assert "password authentication failed" in failed.data.tags["housing.error"]
    assert len(store.client.search_model_versions(f"name='{MODEL}'")) == versions


def test_an_unknown_storage_scheme_fails_at_start_up_naming_the_key(first_run: FirstRun) -> None:
    store = first_run.store
    runs = len(store.runs())
    done = store.mlflow_run(
        hydra=f"{FAST_OPTIONS} sweep.storage=postgres-ql://housing:Typo-Secret-2@127.0.0.1/optuna", check=False
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "config key 'sweep.storage' = 'postgres-ql://housing:***@127.0.0.1/optuna' is not allowed" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Typo-Secret-2" not in last
    assert len(store.runs()) == runs, last


# -- the tracking server dies mid-pipeline -----------------------------------------------------


@pytest.mark.faults
def test_server_killed_mid_register_fails_naming_it_and_a_rerun_registers_once(
    first_run: FirstRun, services: Services, tmp_path: Path
) -> None:
    store, client, server = first_run.store, first_run.store.client, services.server
    before = {v.version for v in client.search_model_versions(f"name='{MODEL}'")}
    hydra = f"{pipeline_hydra(services)} pipeline.force=[register]"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            store.command("-P", "steps=register", hydra=hydra),
            env=store.env,
            cwd=tmp_path,
            stdout=stdout,
            stderr=stderr,
        )
    # kill the server as soon as the new version exists: before its tags, aliases and `complete`
    deadline = time.monotonic() + 300
    while {v.version for v in client.search_model_versions(f"name='{MODEL}'")} == before:
        assert process.poll() is None, f"{out.read_text()[-2000:]}\n{err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no version was registered"
        time.sleep(0.2)
    server.kill()
    try:
        code = process.wait(timeout=180)
    finally:
        server.start()
    assert code != 0
    lines = [line for line in err.read_text().strip().splitlines() if line.strip()]
    assert server.uri in lines[-1], lines[-1]
    services.assert_no_password(out.read_text(), err.read_text())

    # the same command again: the killed register run is not a cache hit, the half version goes
    again = store.mlflow_run("-P", "steps=register", hydra=hydra)
    assert "[register] running" in again.stdout
    assert "deleted half-registered version(s)" in again.stdout + again.stderr
    assert "[sweep] cached" in again.stdout
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == len(before) + 1, "the half-registered version was deleted, one complete one added"
    assert all(v.tags.get("housing.registration") == "complete" for v in versions), [v.tags for v in versions]


# -- two pipelines at once, two working directories, one server -------------------------------


@pytest.mark.faults
def test_two_cold_pipelines_from_two_directories_run_each_step_once_and_register_one_version(
    first_run: FirstRun, services: Services, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Nothing is cached for them (an experiment of their own), so both need every step. Each has
    its own TMPDIR, so the file lock of one machine cannot coordinate them: only the claims on the
    tracking server can. Each step runs once; the other pipeline waits and reuses its run."""
    store, client = first_run.store, first_run.store.client
    hydra = f"{pipeline_hydra(services)} tracking.experiment_name=concurrent registry.model_name=concurrent_model"
    processes = []
    for machine in ("a", "b"):
        (tmp_path / machine).mkdir()
        # short: select's forkserver puts a Unix socket in TMPDIR, whose path may not pass 107 bytes
        tmp = tempfile.mkdtemp(prefix=f"hm-{machine}-", dir="/tmp")
        request.addfinalizer(lambda tmp=tmp: shutil.rmtree(tmp, ignore_errors=True))
        env = store.env | {"TMPDIR": tmp}
        processes.append(
            subprocess.Popen(
                store.command(hydra=hydra),
                env=env,
                cwd=tmp_path / machine,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=1200) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
    stdout = "\n".join(out for out, _ in outputs)
    experiment = client.get_experiment_by_name("concurrent")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    for step in STEPS:
        assert stdout.count(f"[{step}] running") == 1, f"{step} ran more than once:\n{stdout}"
        finished = [r for r in runs if r.data.tags.get("housing.step") == step and r.info.status == "FINISHED"]
        assert len(finished) == 1, step
    assert "of a concurrent pipeline" in stdout  # the other one waited on a claim, then reused
    (version,) = client.search_model_versions("name='concurrent_model'")
    assert version.tags["housing.registration"] == "complete"
    claims = client.search_registered_models("name LIKE 'housing-mlops.claim.%'")
    assert claims == [], "every claim was released"
