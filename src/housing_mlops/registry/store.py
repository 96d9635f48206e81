"""Model Registry operations on aliases (never stages): champion, challenger, history."""

import contextlib
import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from housing_mlops.config.registry import RegistryConfig
from housing_mlops.errors import HousingError
from housing_mlops.modeling.metrics import wmape
from housing_mlops.registry.gate import Contender, Verdict, decide
from housing_mlops.tags import REGISTRATION_TAG, STEP_TAG, UPSTREAM_TAG

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"  # JSON list of versions that were champion, oldest first
COMPLETE_TAG = REGISTRATION_TAG  # "complete" once every tag and alias of a version is set
# the gate's latency figure, newest first: the served variant's 1-thread CPU-time p95, then the
# wall-clock p95 of versions registered before it existed
LATENCY_TAGS = ("hardware.cpu_p95_ms", "hardware.latency_p95_ms")


def version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version `alias` points at, or None when the alias (or the model) does not exist."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def history(client: MlflowClient, name: str) -> list[str]:
    """Versions that were champion, oldest first."""
    tags = client.get_registered_model(name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def set_champion(client: MlflowClient, name: str, version: str, reason: str) -> None:
    """Move `champion` to `version` and append it to the alias history.

    The history is written before the alias moves: the webhook receiver (pipeline/webhook.py),
    told of the move, finds it recorded and knows the pipeline made it (through the gate, forced,
    or a rollback), not a person in the UI. Should the alias not move, the history is put back.
    """
    before = history(client, name)
    past = list(before)
    current = version_by_alias(client, name, CHAMPION)
    if current is not None and (not past or past[-1] != str(current.version)):
        past.append(str(current.version))  # a champion set by hand in the UI joins the history
    if not past or past[-1] != str(version):  # promoting the champion again is no new move
        past.append(str(version))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))
    try:
        client.set_registered_model_alias(name, CHAMPION, str(version))
    except BaseException:
        _restore_history(client, name, before)
        raise
    client.set_model_version_tag(name, str(version), "promotion.reason", reason[:5000])


def _restore_history(client: MlflowClient, name: str, past: list[str]) -> None:
    """Best effort: a store that just failed may fail again, and the caller's error is the one to see."""
    with contextlib.suppress(MlflowException):
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))


def record_champion(client: MlflowClient, name: str, version: str) -> bool:
    """Append `version` to the alias history unless it is the last entry; return whether it was appended.

    For moves made outside the pipeline (the UI, the REST API), which `set_champion` never saw.
    """
    past = history(client, name)
    if past and past[-1] == str(version):
        return False
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps([*past, str(version)]))
    return True


def rollback(client: MlflowClient, name: str) -> tuple[str, str]:
    """Point `champion` back at the previous champion; return (from, to)."""
    current = version_by_alias(client, name, CHAMPION)
    if current is None:
        raise HousingError(f"model '{name}' has no champion to roll back from")
    past = history(client, name)
    while past and past[-1] == str(current.version):
        past.pop()
    if not past:
        raise HousingError(f"model '{name}': no earlier champion in tag '{HISTORY_TAG}' to roll back to")
    previous = past[-1]
    # history first, as in set_champion: the webhook receiver then sees a move it need not record
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_model_version_tag(name, previous, "promotion.reason", f"rollback from v{current.version}")
    return current.version, previous


def ensure_model(client: MlflowClient, name: str, description: str) -> None:
    """Create the registered model `name` unless it exists."""
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name, description=description)
        except MlflowException:  # created meanwhile by a concurrent pipeline
            client.get_registered_model(name)


def is_complete(version: ModelVersion) -> bool:
    """Whether every tag and alias of `version` was set (its completion tag is there)."""
    return version.tags.get(COMPLETE_TAG) == "complete"


def discard(client: MlflowClient, name: str, version: str) -> None:
    """Delete a version that never completed.

    If it had already become champion, give `champion` back to the previous one in the alias
    history (or to none).
    """
    version = str(version)
    current = version_by_alias(client, name, CHAMPION)
    if current is not None and str(current.version) == version:
        past = history(client, name)
        while past and past[-1] == version:
            past.pop()
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(past))  # before the alias: see set_champion
        if past:
            client.set_registered_model_alias(name, CHAMPION, past[-1])
    client.delete_model_version(name, version)


def prune_incomplete(client: MlflowClient, name: str) -> tuple[list[str], list[str]]:
    """Delete the versions a `register` run created and never completed because it died.

    Such a version's run ended KILLED or FAILED without the completion tag; return (deleted, left).

    A version whose run is still RUNNING is left alone: it may be registering right now in a
    concurrent pipeline, or its pipeline was killed somewhere its death cannot be told (see
    orchestrator.close_stale_runs). Versions registered by hand (no `register` run) are never
    touched.
    """
    deleted: list[str] = []
    left: list[str] = []
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return deleted, left
    for version in versions:
        if is_complete(version) or not version.run_id:
            continue
        try:
            run = client.get_run(version.run_id)
        except MlflowException:
            continue
        if run.data.tags.get(STEP_TAG) != "register":
            continue
        if run.info.status in ("KILLED", "FAILED"):
            discard(client, name, str(version.version))
            deleted.append(str(version.version))
        elif run.info.status == "RUNNING":
            left.append(str(version.version))
    return deleted, left


def tag_version(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    """Set each tag on the version, as a string cut to MLflow's 5,000-character limit."""
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:5000])


def latency_figure(tags: dict[str, str]) -> float:
    """The version's p95 latency for the gate: the served variant's 1-thread CPU-time p95.

    Versions registered before that figure existed have only their wall-clock p95; NaN without
    either.
    """
    for tag in LATENCY_TAGS:
        if tag in tags:
            return float(tags[tag])
    return float("nan")


def contender(client: MlflowClient, name: str, version: str, X: pd.DataFrame, y: pd.Series) -> Contender:
    """Load version `version` and score it on (X, y) now, as the gate needs."""
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    schema = model.metadata.get_input_schema()
    tags = client.get_model_version(name, version).tags
    predictions = np.asarray(model.predict(X), dtype=float).ravel()
    return Contender(
        str(version),
        wmape(y, predictions),
        latency_figure(tags),
        schema.to_dict() if schema else [],
        predictions,
    )


def gate(
    client: MlflowClient,
    name: str,
    challenger: Contender,
    X: pd.DataFrame,
    y: pd.Series,
    cfg: RegistryConfig,
) -> Verdict:
    """Re-score the current champion on (X, y), the challenger's sealed test set, and decide.

    `challenger.predictions` are of the rows of X, in their order: the gate compares the two
    versions row by row on them (a paired bootstrap of the wMAPE difference).
    """
    current = version_by_alias(client, name, CHAMPION)
    return compare(client, name, challenger, None if current is None else str(current.version), X, y, cfg)


def compare(
    client: MlflowClient,
    name: str,
    challenger: Contender,
    champion: str | None,
    X: pd.DataFrame,
    y: pd.Series,
    cfg: RegistryConfig,
) -> Verdict:
    """The gate against version `champion` (None: no champion), scored now on (X, y).

    `gate` names the current champion; a move the alias has already made names the one before it.
    """
    against = None
    if champion is not None and str(champion) != challenger.version:
        against = contender(client, name, str(champion), X, y)
    return decide(challenger, against, y, cfg)


def sealed_test_run(client: MlflowClient, name: str, version: str) -> str:
    """Run id of the split run whose test set version `version` was scored on."""
    run_id = client.get_model_version(name, version).run_id
    split_run = client.get_run(run_id).data.tags.get(f"{UPSTREAM_TAG}split") if run_id else None
    if not split_run:
        raise HousingError(f"model '{name}' v{version} has no split lineage (tag {UPSTREAM_TAG}split)")
    return split_run
