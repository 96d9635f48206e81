"""Markdown summary of the newest pipeline run, for $GITHUB_STEP_SUMMARY (`make retrain`)."""

import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.pipeline.summary import retrain_summary
from housing_mlops.pipeline.tracking import tracking_uri

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Print the summary for the config the command line's Hydra overrides compose."""
    words = sys.argv[1:] if argv is None else argv
    cfg, _ = load_config(ROOT / "config", parse_overrides(" ".join(words)))
    mlflow.set_tracking_uri(tracking_uri(ROOT))
    sys.stdout.write(retrain_summary(MlflowClient(), cfg.tracking.experiment_name, cfg.registry.model_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
