"""Shared fixtures: a small real sample of the housing data, a private tracking store per
test, and a helper that runs the real `mlflow run` against it."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
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


@pytest.fixture(autouse=True, scope="session")
def _user_facing_log_lines() -> None:
    """In-process library calls log as the steps do: `warning: ...` on stderr."""
    logs.configure()


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


@pytest.fixture
def store(tmp_path: Path, sample_csv: Path) -> Store:
    return make_store(tmp_path / "tracking", sample_csv)
