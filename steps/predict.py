"""Entry point `predict`: score a CSV or parquet file with the champion (or any model URI).

mlflow run . --env-manager local -e predict -P input=new.csv -P output=predictions.csv
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
from housing_mlops.pipeline.capture import capture_dir
from housing_mlops.pipeline.tracking import tracking_uri

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Score the input file; return the exit code."""
    parser = argparse.ArgumentParser(prog="steps/predict.py")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--model-uri", default="")
    parser.add_argument("--hydra-options", default="")
    args = parser.parse_args(argv)
    logs.configure("predict")
    try:
        cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking_uri(ROOT))
        capture_to = capture_dir(cfg, ROOT)
        done = champion.predict(MlflowClient(), cfg, Path(args.input), Path(args.output), args.model_uri, capture_to)
    except (HousingError, mlflow.exceptions.MlflowException) as exc:
        log.error(str(exc).splitlines()[0])
        return 1
    log.info(f"{done.rows} rows scored with {done.uri} (version {done.version}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
