"""Step `ingest`: fetch the data, verify its checksum, validate its schema, log raw.parquet."""

import logging
import sys
import warnings
from pathlib import Path

import mlflow

from housing_mlops.data import schema, source
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.tags import DATA_SHA_TAG, DATA_SOURCE_TAG

log = logging.getLogger(__name__)


def ingest(ctx: StepContext) -> None:
    """Fetch and verify the source, validate it, hand on raw.parquet with its profile and dataset."""
    data = ctx.cfg.data
    csv = source.fetch(data.source, data.download, ctx.workdir)
    sha = source.verify(csv, data.sha256)
    checked = schema.validate(schema.read_csv(csv), data, csv.name)
    for message in checked.warnings:
        ctx.warn(message)
    for violation in checked.dropped:
        log.info(f"dropped {violation.rows} row(s) outside their domain: {violation.describe()}")
    df = checked.frame
    ctx.output("raw.parquet", df.to_parquet)
    mlflow.log_dict(schema.profile(df), "profile.json")
    mlflow.set_tags({DATA_SHA_TAG: sha, DATA_SOURCE_TAG: data.source})
    dropped = {f"rows_dropped_domain.{v.column}": v.rows for v in checked.dropped}
    mlflow.log_metrics(
        {"rows": len(df), "columns": df.shape[1], "rows_dropped_domain": checked.rows_dropped, **dropped}
    )
    with warnings.catch_warnings():
        # MLflow registers its local-file source under two schemes and warns on every local path
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted in multiple ways")
        dataset = mlflow.data.from_pandas(df, source=data.source, targets=data.target, name=csv.name)
    mlflow.log_input(dataset, context="raw")
    log.info(f"{len(df)} rows from {data.source} (sha256 {sha[:12]})")


if __name__ == "__main__":
    sys.exit(run_step("ingest", ingest, Path(__file__).resolve().parents[1]))
