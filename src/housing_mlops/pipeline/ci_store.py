"""Where the retrain workflow's SQLite registry comes from without a tracking server.

`make restore-store`: the Actions cache is the fast path; an evicted cache falls back to the store
uploaded by the newest successful retraining; with neither, the registry starts empty and the job
summary says so.
"""

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from housing_mlops.errors import StorageError

DATABASE = "mlflow.db"
NEW_REGISTRY = "new registry: no earlier store found"


@dataclass(frozen=True)
class StoreContents:
    """What a store's registry holds: model versions and the champion's version (None: no champion)."""

    versions: int
    champion: str | None

    def describe(self, model_name: str) -> str:
        """e.g. `3 versions of housing_price_model, champion v2`."""
        champion = f"champion v{self.champion}" if self.champion else "no champion"
        return f"{self.versions} versions of {model_name}, {champion}"


def inspect_store(database: Path, model_name: str) -> StoreContents:
    """Read the registry of an MLflow SQLite store without migrating it; a file that is not one raises."""
    try:
        with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True) as connection:
            (versions,) = connection.execute(
                "SELECT count(*) FROM model_versions WHERE name = ?", (model_name,)
            ).fetchone()
            row = connection.execute(
                "SELECT version FROM registered_model_aliases WHERE name = ? AND alias = 'champion'", (model_name,)
            ).fetchone()
    except sqlite3.Error as exc:
        raise StorageError(
            f"{database} is not an MLflow tracking store ({exc}): delete that cache entry or workflow artifact, "
            "or set the MLFLOW_TRACKING_URI secret"
        ) from exc
    return StoreContents(int(versions), None if row is None else str(row[0]))


def restore_store(store: Path, previous: Path | None, model_name: str, source: str = "") -> str:
    """Make `store` hold the last retraining's registry; return the job-summary line saying where it came from.

    `store` already holding `mlflow.db` means the Actions cache restored it. Otherwise `previous` (the
    downloaded artifact of the newest successful retraining, named by `source`) is copied into it, when
    it holds a database; otherwise the registry is new and the line says so.
    """
    database = store / DATABASE
    if database.is_file():
        return f"registry: restored from the Actions cache ({inspect_store(database, model_name).describe(model_name)})"
    if previous is not None and (previous / DATABASE).is_file():
        contents = inspect_store(previous / DATABASE, model_name)  # a broken artifact fails before any copy
        try:
            shutil.copytree(previous, store, dirs_exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot copy the store {previous} into {store}: {exc}; free the space and re-run"
            ) from exc
        origin = f"the store uploaded by {source}" if source else f"the store in {previous}"
        return f"registry: restored from {origin} ({contents.describe(model_name)})"
    store.mkdir(parents=True, exist_ok=True)
    return (
        f"{NEW_REGISTRY} (no Actions cache, no artifact of a successful retraining): "
        "this retraining starts an empty registry"
    )


def newest_store_artifact(successful_runs: list[int], artifacts: list[dict]) -> int | None:
    """The run id whose `mlflow-store-<run id>` artifact is the newest unexpired one of a successful run.

    `successful_runs`: ids of successful retrain.yml runs and of monitor.yml runs (a monitor run that
    retrained uploads the store under its own id); `artifacts`: GitHub's artifact objects (`name`,
    `expired`, `created_at`), as `gh api repos/{owner}/{repo}/actions/artifacts` lists them.
    """
    wanted = {f"mlflow-store-{run}": run for run in successful_runs}
    usable = [a for a in artifacts if a.get("name") in wanted and not a.get("expired", False)]
    if not usable:
        return None
    return wanted[max(usable, key=lambda a: str(a.get("created_at", "")))["name"]]
