"""Where runs live: the tracking URI, the local store folder, the experiment, a run's digests."""

import os
from pathlib import Path

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.tags import DIGEST_TAG

_SQLITE = "sqlite:///"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's own SQLite store (never MLflow's default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"{_SQLITE}{(root / 'mlflow.db').resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, however it is spelled; None for any other store."""
    return Path(uri.removeprefix(_SQLITE)).resolve() if uri.startswith(_SQLITE) else None


def local_store_dir(root: Path) -> Path:
    """Folder of the SQLite tracking store, or the project root for a remote store.

    Local state that must outlive a step (artifacts, Optuna studies) lives there.
    """
    database = sqlite_path(tracking_uri(root))
    return database.parent if database is not None else root


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """Experiment id for `name`, created on first use.

    With a SQLite store, artifacts go to `mlartifacts/` beside the database file rather than
    MLflow's default `./mlruns`.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    database = sqlite_path(str(client.tracking_uri))
    location = (database.parent / "mlartifacts").as_uri() if database is not None else None
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent pipeline
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def digests(run: Run) -> dict[str, str]:
    """Output artifact name -> sha256, from the run's digest tags."""
    return {k.removeprefix(DIGEST_TAG): v for k, v in run.data.tags.items() if k.startswith(DIGEST_TAG)}
