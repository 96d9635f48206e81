"""Entry point of `make webhook`: the registry webhook receiver, and the MLflow webhook that feeds it.

python -m steps.webhook [--hydra-options "webhook.port=5003"] [--no-register]

Creates (or updates) the MLflow webhook named `webhook.name` on the tracking server to post alias
events to this receiver, signed with the secret from $HOUSING_WEBHOOK_SECRET (`webhook.secret_env`),
then serves until stopped; at start it reconciles the champion history with the registry.
"""

import argparse
import logging
import sys
from pathlib import Path

import mlflow
import uvicorn
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import logs
from housing_mlops.pipeline import webhook as receiver
from housing_mlops.pipeline.tracking import tracking_uri

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Register the webhook and serve until stopped; return the exit code."""
    parser = argparse.ArgumentParser(prog="steps/webhook.py")
    parser.add_argument("--hydra-options", default="")
    parser.add_argument("--no-register", action="store_true", help="serve only; leave the MLflow webhook as it is")
    args = parser.parse_args(argv)
    logs.configure("webhook")
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        secret, token = cfg.webhook.secret(), cfg.webhook.dispatch.token()
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        client = MlflowClient()
        if not args.no_register:
            log.info(receiver.ensure_webhook(client, cfg.webhook, secret))
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    hook = cfg.webhook
    log.info(f"receiving {cfg.registry.model_name} alias events on http://{hook.host}:{hook.port}/webhook")
    app = receiver.app(receiver.Receiver(client, cfg, secret, token))
    uvicorn.run(app, host=hook.host, port=hook.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
