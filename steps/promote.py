"""Entry points `promote` and `rollback`: move the `champion` alias by hand, through the gate.

mlflow run . --env-manager local -e promote -P version=3 [-P force=true]
mlflow run . --env-manager local -e rollback
"""

import argparse
import logging
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import champion, logs
from housing_mlops.pipeline.tracking import tracking_uri

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Promote or roll back; return the exit code."""
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
            message = champion.rollback(client, cfg)
        elif not args.version:
            raise HousingError("promote needs -P version=N")
        else:
            message = champion.promote(client, cfg, args.version, args.force == "true")
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    log.info(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
