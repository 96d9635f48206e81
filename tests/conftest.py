"""Shared fixtures: a small real sample of the housing data, a private tracking store per
test, a helper that runs the real `mlflow run` against it, and one trained store per test
session that the registry, serving, fault and cache tests copy instead of re-training."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
from housing_mlops.data.source import sha256_file
from housing_mlops.pipeline import logs

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED_CSV = ROOT.parent / "shared" / "data" / "housing.csv"
SAMPLE_ROWS = 2000
# Overrides every e2e run uses: the sample is not the canonical file.
SAMPLE_OPTIONS = "data.sha256=null"
# Shrinks every later step for the sample (few K values, 2-fold CV, four trials, no sweep timeout):
# the smoke profile, config/profile/smoke.yaml, as `make smoke` and `bench --quick` use it.
FAST_OPTIONS = "profile=smoke"


def full_data_path() -> Path:
    """The real dataset: HOUSING_DATA_SOURCE as CI sets it, else ../shared/data/housing.csv."""
    path = Path(os.environ.get("HOUSING_DATA_SOURCE", SHARED_CSV))
    if not path.is_file():
        pytest.fail(f"real dataset not found at {path}: set HOUSING_DATA_SOURCE to housing.csv")
    return path


@pytest.fixture(scope="session")
def full_data() -> pd.DataFrame:
    return pd.read_csv(full_data_path())


@pytest.fixture(scope="session")
def sample_csv(tmp_path_factory: pytest.TempPathFactory, full_data: pd.DataFrame) -> Path:
    """A seeded 2,000-row sample of the real data (keeps its missing total_bedrooms)."""
    path = tmp_path_factory.mktemp("data") / "housing_sample.csv"
    full_data.sample(SAMPLE_ROWS, random_state=0).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config(ROOT / "config", [])[0]


@dataclass
class Store:
    """A private tracking store and the environment every subprocess of a test gets."""

    uri: str
    env: dict[str, str]

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    def command(self, *args: str, hydra: str = "") -> list[str]:
        """`mlflow run <project> --env-manager local ...` with the sample's overrides."""
        options = f"{SAMPLE_OPTIONS} {hydra}".strip()
        return [
            str(BIN / "mlflow"),
            "run",
            str(ROOT),
            "--env-manager",
            "local",
            *args,
            "-P",
            f"hydra_options={options}",
        ]

    def mlflow_run(self, *args: str, hydra: str = "", check: bool = True) -> subprocess.CompletedProcess:
        """Run `command(...)` to completion; raise with its output unless it succeeds (or check=False)."""
        cmd = self.command(*args, hydra=hydra)
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=600)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done

    def runs(self, step: str | None = None) -> list:
        """All runs of the project experiment (newest first), optionally of one step."""
        experiment = self.client.get_experiment_by_name("housing-mlops")
        if experiment is None:
            return []
        runs = self.client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
        return [r for r in runs if step is None or r.data.tags.get("housing.step") == step]


def make_store(directory: Path, data: Path) -> Store:
    uri = f"sqlite:///{directory / 'mlflow.db'}"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": uri,
        "HOUSING_DATA_SOURCE": str(data),
        "WANDB_MODE": "disabled",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # tests run side by side (make test uses pytest-xdist): OpenMP threads of two
        # HistGradientBoosting fits fighting over 2 cores slow each fit tenfold
        "OMP_NUM_THREADS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow's usage telemetry is the only outside lookup
    }
    return Store(uri, env)


# Longest modules first. `make test` runs `--dist loadscope --no-loadscope-reorder`: xdist hands
# whole modules to the two workers in this order, so the long ones start at once (beside the
# trained store's background build) and the many short unit modules fill the gaps at the end.
# xdist's default reorder (most tests first) would start the parametrised unit modules and
# leave the few long end-to-end ones to the last minutes, one worker idle.
LONGEST_FIRST = (
    "e2e/test_concurrency.py",
    "e2e/test_postgres.py",
    "e2e/test_sweep_load.py",
    "e2e/test_registry.py",
    "e2e/test_faults.py",
    "e2e/test_gate_load.py",
    "benchmarks/test_bench.py",
    "e2e/test_pipeline.py",
    "e2e/test_serve_follow.py",
    "e2e/test_bad_inputs.py",
    "e2e/test_monitor.py",
    "e2e/test_ui.py",
    "e2e/test_webhook.py",
    "e2e/test_wandb.py",
    "e2e/test_sweep_workers.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the trained store; order the collection longest module first.

    A test that uses the session's trained store depends on a whole `make retrain`: it is `e2e`
    (a subprocess made its data) and `slow`, wherever it lives. The sort is stable: the order
    within a module holds.
    """
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> int:
        module = item.path.relative_to(ROOT / "tests").as_posix()
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(autouse=True, scope="session")
def _user_facing_log_lines() -> None:
    """In-process library calls log as the steps do: `warning: ...` on stderr."""
    logs.configure()


_RUN_SCOPED_ENV = ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own SQLite store; nothing reaches ./mlflow.db or W&B servers."""
    uri = f"sqlite:///{tmp_path / 'tracking' / 'mlflow.db'}"
    (tmp_path / "tracking").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)
    yield
    while mlflow.active_run():
        mlflow.end_run()
    # mlflow.set_experiment exports MLFLOW_EXPERIMENT_ID for child processes: a later test's
    # `mlflow run` in this worker would inherit an experiment of another store
    for name in _RUN_SCOPED_ENV:
        os.environ.pop(name, None)


@pytest.fixture
def store(tmp_path: Path, sample_csv: Path) -> Store:
    return make_store(tmp_path / "tracking", sample_csv)


# -- one trained store per session ------------------------------------------------------------
# The whole pipeline on the sample, run once per test session by `make retrain` (what the
# retrain workflow runs) with the W&B mirror in offline mode. Tests that only read it share it;
# tests that add runs, versions or aliases work on a copy (`copy_store`), which costs a file
# copy instead of a pipeline.
MODEL = "housing_price_model"
# wandb=offline is not part of any step's cache key: copies reuse these runs with FAST_OPTIONS.
TRAINED_HYDRA = f"{SAMPLE_OPTIONS} {FAST_OPTIONS} wandb=offline"


@dataclass(frozen=True)
class Trained:
    """The session's trained store: version 1 registered and champion."""

    store: Store
    folder: Path  # holds mlflow.db, mlartifacts/, optuna/ (everything `copy_store` copies)
    wandb_dir: Path  # WANDB_DIR of the run: wandb/offline-run-*/
    stdout: str
    stderr: str
    summary: str  # the job summary `make retrain` wrote

    def copy(self, dest: Path) -> Store:
        return copy_store(self.store, dest)


def retrain_command(
    store: Store, summary: Path, hydra: str = TRAINED_HYDRA, env: dict[str, str] | None = None
) -> tuple[list[str], dict[str, str]]:
    """Exactly what the retrain workflow runs: `make retrain`, with a job summary file."""
    venv = Path(sys.prefix)
    cmd = ["make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "retrain", f"HYDRA={hydra}"]
    return cmd, {**(env or store.env), "GITHUB_STEP_SUMMARY": str(summary)}


def retrain(store: Store, summary: Path, hydra: str = TRAINED_HYDRA, env: dict[str, str] | None = None):
    """Run `make retrain` to completion; fail with its output unless it succeeds."""
    cmd, full_env = retrain_command(store, summary, hydra, env)
    done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def wandb_env(env: dict[str, str], home: Path, wandb_dir: Path, mode: str) -> dict[str, str]:
    """`env` with every W&B location inside `home`/`wandb_dir`, no API key, and a closed port
    as the server, should anything try to reach one."""
    home.mkdir(parents=True, exist_ok=True)
    wandb_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in env.items() if k != "WANDB_API_KEY"}
    return env | {
        "WANDB_MODE": mode,
        "WANDB_DIR": str(wandb_dir),
        "HOME": str(home),  # no ~/.netrc, ~/.config/wandb, nor caches outside the test
        "WANDB_BASE_URL": "http://127.0.0.1:9",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MPLCONFIGDIR": str(home / "mpl"),
    }


TRAINED_TIMEOUT_S = 900


def _shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The folder every xdist worker of this session sees (a fresh one per session)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(autouse=True, scope="session")
def _trained_build(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[subprocess.Popen | None]:
    """Start building the trained store at session start, in the background, in the one worker
    that claims it first: the other worker and this one run other tests meanwhile instead of
    waiting for it. Nothing starts when no collected test uses `trained`."""
    if not any("trained" in item.fixturenames for item in request.session.items):
        yield None
        return
    root = _shared_dir(tmp_path_factory, worker_id) / "trained"
    try:
        root.mkdir()  # atomic: exactly one worker of the session claims the build
    except FileExistsError:
        yield None
        return
    sample = request.getfixturevalue("sample_csv")
    folder, wandb_dir = root / "store", root / "wandb-dir"
    folder.mkdir()
    store = make_store(folder, sample)
    # WANDB_MODE=disabled is what `make` exports: `wandb=offline` in the config must win
    cmd, env = retrain_command(
        store, root / "summary.md", env=wandb_env(store.env, root / "home", wandb_dir, "disabled")
    )
    (root / "data.txt").write_text(str(sample))
    with open(root / "stdout.txt", "w") as out, open(root / "stderr.txt", "w") as err:
        build = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True, start_new_session=True)
    yield build
    if build.poll() is None:  # the session ended first (-x, ^C): take the whole pipeline down
        os.killpg(build.pid, 9)
        build.wait()


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str, _trained_build: subprocess.Popen | None
) -> Trained:
    """The store of one `make retrain` on the sample, built once per session even under
    pytest-xdist; the worker that did not build it waits for the builder's `done` mark."""
    root = _shared_dir(tmp_path_factory, worker_id) / "trained"
    if _trained_build is not None:
        code = _trained_build.wait(timeout=TRAINED_TIMEOUT_S)
        if code != 0:
            tails = f"{(root / 'stdout.txt').read_text()[-3000:]}\n{(root / 'stderr.txt').read_text()[-5000:]}"
            (root / "failed.txt").write_text(f"make retrain exited {code}:\n{tails}")
        else:
            (root / "done").touch()
    deadline = time.monotonic() + TRAINED_TIMEOUT_S
    while not (root / "done").exists():
        if (root / "failed.txt").exists():
            pytest.fail(f"building the trained store failed:\n{(root / 'failed.txt').read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the trained store was not built within {TRAINED_TIMEOUT_S} s")
        time.sleep(0.5)
    folder = root / "store"
    return Trained(
        make_store(folder, Path((root / "data.txt").read_text())),  # the data the builder ran on
        folder,
        root / "wandb-dir",
        (root / "stdout.txt").read_text(),
        (root / "stderr.txt").read_text(),
        (root / "summary.md").read_text(),
    )


def copy_store(source: Store, dest: Path) -> Store:
    """A private copy of `source`'s folder (SQLite DB, artifacts, Optuna studies) at `dest`.

    The database stores absolute artifact locations; they are rewritten to the copy's, so
    runs, versions and artifacts written through the copy never touch the original.
    """
    src = Path(source.uri.removeprefix("sqlite:///")).parent
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.lock"))
    old, new = str(src), str(dest)
    with sqlite3.connect(dest / "mlflow.db") as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                name, kind = column[1], (column[2] or "").upper()
                if "CHAR" in kind or "TEXT" in kind or "CLOB" in kind:
                    db.execute(
                        f'UPDATE "{table}" SET "{name}" = replace("{name}", ?, ?) WHERE instr("{name}", ?) > 0',
                        (old, new, old),
                    )
    db.close()
    return make_store(dest, Path(source.env["HOUSING_DATA_SOURCE"]))


def assert_digests_match(store: Store, run: Run, tmp_path: Path) -> None:
    """Every artifact a run tags with a sha256 downloads with exactly that digest."""
    digests = {
        k.removeprefix("housing.digest."): v for k, v in run.data.tags.items() if k.startswith("housing.digest.")
    }
    assert digests, f"run {run.info.run_id} has no digest tags"
    for name, digest in digests.items():
        path = store.client.download_artifacts(run.info.run_id, name, str(tmp_path / run.info.run_id))
        assert sha256_file(Path(path)) == digest, f"{name} of run {run.info.run_id} does not match its tag"
