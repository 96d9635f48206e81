"""Step `impute`: the imputation contest on train (target excluded) -> imputation.json."""

import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.features.imputation import pick_winner, score_strategies
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots

log = logging.getLogger(__name__)


def impute(ctx: StepContext) -> None:
    data, cfg = ctx.cfg.data, ctx.cfg.impute
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    features = train[data.features("numeric", "geo")]  # the target is never an input
    scores = score_strategies(features, cfg.strategies, cfg.folds, cfg.mask_fraction, cfg.seed)
    winner = pick_winner(scores) if not scores.empty else "median"
    chosen = winner if cfg.strategy == "auto" else cfg.strategy
    result = {
        "strategy": chosen,
        "params": cfg.strategies[chosen],
        "winner": winner,
        "forced": cfg.strategy != "auto",
        "columns_with_missing": sorted(scores["column"].unique().tolist()),
        # timings vary run to run; they stay out of the digested artifact
        "scores": scores.drop(columns="seconds").round(6).to_dict(orient="records"),
    }
    ctx.output("imputation.json", lambda p: p.write_text(json.dumps(result, indent=2)))
    mlflow.log_table(scores, "imputation_scores.json")
    if not scores.empty:
        mlflow.log_figure(plots.imputation_scores(scores, winner), "imputation_scores.png")
    by_strategy = scores.groupby("strategy")[["rmse_mean", "seconds"]].mean()
    for name, row in by_strategy.iterrows():
        mlflow.log_metrics({f"rmse_{name}": row["rmse_mean"], f"seconds_{name}": row["seconds"]})
    mlflow.log_params({"strategy": chosen, "winner": winner})
    log.info(f"winner {winner}, using {chosen}")
    log.info("\n" + scores.to_string(index=False))


if __name__ == "__main__":
    sys.exit(run_step("impute", impute, Path(__file__).resolve().parents[1]))
