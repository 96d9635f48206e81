"""Step `split`: stratified train/test split; the test set stays sealed until `register`."""

import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.data.split import split
from housing_mlops.pipeline.runner import StepContext, run_step

log = logging.getLogger(__name__)


def split_step(ctx: StepContext) -> None:
    """Split raw.parquet into train and (sealed) test parquet files."""
    raw = pd.read_parquet(ctx.input("ingest", "raw.parquet"))
    train, test = split(raw, ctx.cfg.data, ctx.cfg.split)
    ctx.output("train.parquet", train.to_parquet)
    ctx.output("test.parquet", test.to_parquet)
    mlflow.log_metrics({"train_rows": len(train), "test_rows": len(test)})
    log.info(f"train {len(train)} rows, test {len(test)} rows (sealed)")


if __name__ == "__main__":
    sys.exit(run_step("split", split_step, Path(__file__).resolve().parents[1]))
