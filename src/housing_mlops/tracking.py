"""MLflow primitives shared by the step runner and the orchestrator: where runs live,
how outputs are digested, and how a step's cache key finds a finished run."""

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

import housing_mlops
from housing_mlops import cache, source
from housing_mlops.dag import STEPS

TAG = "housing"
STEP_TAG = f"{TAG}.step"
KEY_TAG = f"{TAG}.cache_key"
ERROR_TAG = f"{TAG}.error"
DIGEST_TAG = f"{TAG}.digest."
UPSTREAM_TAG = f"{TAG}.upstream."
UNCACHEABLE = "uncacheable"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's own SQLite store (never MLflow's default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def code_version(root: Path) -> dict[str, str]:
    """git SHA of the project and whether the working tree has uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"sha": "unknown", "dirty": "unknown"}
    return {"sha": sha, "dirty": str(bool(status.strip())).lower()}


def local_store_dir(root: Path) -> Path:
    """Folder of the SQLite tracking store, or the project root for a remote store; local
    state that must outlive a step (artifacts, Optuna studies) lives there."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent
    return root


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """Experiment id for `name`, created on first use. With a SQLite store, artifacts go to
    `mlartifacts/` beside the database file rather than MLflow's default `./mlruns`."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = str(client.tracking_uri)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent pipeline
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def digests(run: Run) -> dict[str, str]:
    """Output artifact name -> sha256, from the run's digest tags."""
    return {k.removeprefix(DIGEST_TAG): v for k, v in run.data.tags.items() if k.startswith(DIGEST_TAG)}


def step_key(plain: Mapping[str, Any], step: str, upstream: Mapping[str, Run], root: Path) -> str:
    """Cache key of `step` given its resolved config and the upstream runs it would read."""
    spec = STEPS[step]
    source_id = None
    if not spec.upstream:
        data = plain["data"]
        source_id = source.fingerprint(data["source"], data["sha256"])
        if source_id is None:
            return UNCACHEABLE
    package = Path(housing_mlops.__file__).parent
    files = [*package.rglob("*.py"), root / "steps" / f"{step}.py", root / "MLproject"]
    return cache.cache_key(
        step,
        cache.step_config(plain, spec, source_id),
        {name: digests(upstream[name]) for name in spec.upstream},
        cache.code_fingerprint(files, root),
    )


def find_cached(client: MlflowClient, experiment_id: str, step: str, key: str) -> Run | None:
    """The newest FINISHED run of `step` with this cache key whose outputs are all digested."""
    if key == UNCACHEABLE:
        return None
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{key}' and tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    outputs = set(STEPS[step].outputs)
    return next((run for run in runs if outputs <= digests(run).keys()), None)
