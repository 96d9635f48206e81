"""Step `impute`: the imputation contest on train (target excluded) -> imputation.json."""

import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.modeling.imputer_choice import choose_imputer
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots

log = logging.getLogger(__name__)


def impute(ctx: StepContext) -> None:
    """Run the imputation contest on train and publish imputation.json with its scores and chart."""
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    choice = choose_imputer(train, ctx.cfg.data, ctx.cfg.impute)
    scores, record = choice.scores, choice.record
    ctx.output("imputation.json", lambda p: p.write_text(json.dumps(record, indent=2)))
    mlflow.log_table(scores, "imputation_scores.json")
    if not scores.empty:
        mlflow.log_figure(plots.imputation_scores(scores, record["winner"]), "imputation_scores.png")
    by_strategy = scores.groupby("strategy")[["rmse_mean", "seconds"]].mean()
    for name, row in by_strategy.iterrows():
        mlflow.log_metrics({f"rmse_{name}": row["rmse_mean"], f"seconds_{name}": row["seconds"]})
    mlflow.log_params({"strategy": record["strategy"], "winner": record["winner"]})
    log.info(f"winner {record['winner']}, using {record['strategy']}")
    log.info("\n" + scores.to_string(index=False))


if __name__ == "__main__":
    sys.exit(run_step("impute", impute, Path(__file__).resolve().parents[1]))
