"""Entry point of `make serve`: MLflow's scoring server for the champion, with optional inference capture.

It follows the champion alias every `serving.poll_s` seconds (null: never); a `--model-uri` is
served as it is, never followed.

python -m steps.serve --port 5001 [--hydra-options "capture.enabled=true"] [--model-uri URI]
"""

import argparse
import logging
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.errors import HousingError
from housing_mlops.pipeline import logs
from housing_mlops.pipeline import serve as serving
from housing_mlops.pipeline.tracking import tracking_uri

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Serve until stopped; return the exit code."""
    parser = argparse.ArgumentParser(prog="steps/serve.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-uri", default="")
    parser.add_argument("--hydra-options", default="")
    args = parser.parse_args(argv)
    logs.configure("serve")
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        server = serving.build(MlflowClient(), cfg, ROOT, args.model_uri)
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    serving.serve(server, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
