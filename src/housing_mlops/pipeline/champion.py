"""The champion alias by hand and in use.

Manual promotion through the shared gate, rollback, and batch prediction with the version
`champion` points at.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from housing_mlops.config.schema import Config
from housing_mlops.data.source import read_table
from housing_mlops.errors import HousingError
from housing_mlops.monitoring import inference_log
from housing_mlops.registry import store as registry
from housing_mlops.registry.gate import Verdict

# the gate's whole verdict (JSON) on a version promoted by hand, or moved to by hand (pipeline/webhook.py)
MANUAL_VERDICT_TAG = "promotion.manual_verdict"


def judge(client: MlflowClient, cfg: Config, version: str, champion: str | None) -> Verdict:
    """The gate's verdict on `version` against version `champion` (None: no champion).

    Both are scored now on the sealed test set `version` was scored on at registration, as
    `register` and `promote` do; the webhook receiver asks it about a move already made.
    """
    name = cfg.registry.model_name
    split_run = registry.sealed_test_run(client, name, version)
    test = pd.read_parquet(client.download_artifacts(split_run, "test.parquet"))
    X, y = test[cfg.data.features()], test[cfg.data.target]
    challenger = registry.contender(client, name, version, X, y)
    return registry.compare(client, name, challenger, champion, X, y, cfg.registry)


def promote(client: MlflowClient, cfg: Config, version: str, force: bool) -> str:
    """Make `version` champion if the gate lets it (or unconditionally with `force`); return what happened."""
    name = cfg.registry.model_name
    if not registry.is_complete(client.get_model_version(name, version)):
        raise HousingError(f"model '{name}' v{version} is not completely registered; it cannot be champion")
    if force:
        registry.set_champion(client, name, version, "forced by hand (-P force=true)")
        return f"v{version} is champion (forced, gate skipped)"
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    verdict = judge(client, cfg, version, None if current is None else str(current.version))
    client.set_model_version_tag(name, version, MANUAL_VERDICT_TAG, json.dumps(verdict.to_dict()))
    if not verdict.promote:
        raise HousingError(f"gate refused v{version}: {verdict.reason} (use -P force=true to override)")
    registry.set_champion(client, name, version, verdict.reason)
    return f"v{version} is champion: {verdict.reason}"


def rollback(client: MlflowClient, cfg: Config) -> str:
    """Point `champion` back at the previous champion; return what happened."""
    before, after = registry.rollback(client, cfg.registry.model_name)
    return f"champion rolled back from v{before} to v{after}"


@dataclass(frozen=True)
class Scored:
    """A scored table: how many rows, with which model URI and version, written where."""

    rows: int
    uri: str
    version: str
    output: Path


def predict(
    client: MlflowClient, cfg: Config, source: Path, output: Path, model_uri: str = "", capture_to: Path | None = None
) -> Scored:
    """Score `source` with the champion (or `model_uri`) and write it to `output`.

    The output has `prediction` and `model_version` columns added, and is .parquet, else CSV.
    With `capture_to` (the inference log's folder when capture is on), the scored features and
    predictions are appended to the log too; a failed append is one warning, never a failed prediction.
    """
    name = cfg.registry.model_name
    uri = model_uri or f"models:/{name}@{registry.CHAMPION}"
    frame = read_table(str(source), cfg.data.download, output.parent, "input")
    model = mlflow.pyfunc.load_model(uri)
    version = uri if model_uri else str(client.get_model_version_by_alias(name, registry.CHAMPION).version)
    features = frame[[c for c in cfg.data.features() if c in frame.columns]]
    out = frame.assign(prediction=model.predict(features), model_version=version)
    if output.suffix == ".parquet":
        out.to_parquet(output)
    else:
        out.to_csv(output, index=False)
    if capture_to is not None:
        inference_log.try_append(capture_to, features, out["prediction"].to_numpy(), version, uri, "predict")
    return Scored(len(out), uri, version, output)
