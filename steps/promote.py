"""Entry points `promote` and `rollback`: move the `champion` alias by hand, through the gate.

mlflow run . --env-manager local -e promote -P version=3 [-P force=true]
mlflow run . --env-manager local -e rollback
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import logs
from housing_mlops.pipeline.tracking import tracking_uri
from housing_mlops.registry import store as registry
from housing_mlops.registry.gate import decide

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def promote(client: MlflowClient, cfg, version: str, force: bool) -> str:
    name = cfg.registry.model_name
    if not registry.is_complete(client.get_model_version(name, version)):
        raise HousingError(f"model '{name}' v{version} is not completely registered; it cannot be champion")
    if force:
        registry.set_champion(client, name, version, "forced by hand (-P force=true)")
        return f"v{version} is champion (forced, gate skipped)"
    # the gate scores both versions on the sealed test set the challenger was scored on
    split_run = registry.sealed_test_run(client, name, version)
    test = pd.read_parquet(client.download_artifacts(split_run, "test.parquet"))
    X, y = test[cfg.data.features()], test[cfg.data.target]
    challenger = registry.contender(client, name, version, X, y)
    current = registry.version_by_alias(client, name, registry.CHAMPION)
    champion = None
    if current is not None and str(current.version) != version:
        champion = registry.contender(client, name, current.version, X, y)
    verdict = decide(challenger, champion, cfg.registry)
    client.set_model_version_tag(name, version, "promotion.manual_verdict", json.dumps(verdict.to_dict()))
    if not verdict.promote:
        raise HousingError(f"gate refused v{version}: {verdict.reason} (use -P force=true to override)")
    registry.set_champion(client, name, version, verdict.reason)
    return f"v{version} is champion: {verdict.reason}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steps/promote.py")
    parser.add_argument("action", choices=["promote", "rollback"])
    parser.add_argument("--version", default="")
    parser.add_argument("--force", default="false", choices=["true", "false"])
    parser.add_argument("--hydra-options", default="")
    args = parser.parse_args(argv)
    logs.configure(args.action)
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        client = MlflowClient()
        if args.action == "rollback":
            before, after = registry.rollback(client, cfg.registry.model_name)
            message = f"champion rolled back from v{before} to v{after}"
        else:
            if not args.version:
                raise HousingError("promote needs -P version=N")
            message = promote(client, cfg, args.version, args.force == "true")
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    log.info(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
