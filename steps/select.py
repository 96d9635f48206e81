"""Step `select`: cross-validate every candidate family's grid on train -> selection.json."""

import json
import logging
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.selection import CandidateResult, select_model
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots
from housing_mlops.tags import CANDIDATE_STATUS_TAG, CANDIDATE_TAG, ERROR_TAG

log = logging.getLogger(__name__)
BOARD_COLUMNS = ["rank", "family", "status", "cv_wmape", "cv_wmape_std", "cv_rmse", "fit_s", "seconds"]


def select(ctx: StepContext) -> None:
    """Cross-validate every candidate family, log one nested run each, publish selection.json."""
    data, models, cfg = ctx.cfg.data, ctx.cfg.models, ctx.cfg.select
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    spec = FeatureSpec.from_dict(json.loads(ctx.input("features", "feature_spec.json").read_text()))
    cache_dir = tempfile.mkdtemp(dir=ctx.workdir)  # fitted preprocessing shared by all families

    def log_candidate(result: CandidateResult) -> None:
        _log_candidate(result, models.zoo[result.family].estimator)

    chosen = select_model(models, cfg, spec, train[data.features()], train[data.target], cache_dir, True, log_candidate)
    board, best, record = chosen.board, chosen.best, chosen.record
    ctx.output("selection.json", lambda p: p.write_text(json.dumps(record, indent=2)))
    mlflow.log_text(board.to_csv(index=False), "leaderboard.csv")  # timings: not digested
    if (board["status"] == "ok").any():
        mlflow.log_figure(plots.leaderboard(board), "leaderboard.png")
    mlflow.log_params({"winner": best["family"], "grid": models.grid, "folds": cfg.folds})
    failed = int((board["status"] != "ok").sum())
    mlflow.log_metrics({"best_cv_wmape": float(best["cv_wmape"]), "failed_candidates": failed})
    log.info(f"winner {best['family']} {record['params']}: {record['why']}")
    log.info("\n" + board[BOARD_COLUMNS].to_string(index=False))


def _log_candidate(result: CandidateResult, estimator: str) -> None:
    """One nested run per candidate: its best grid point, or its error."""
    with mlflow.start_run(run_name=result.family, nested=True):
        mlflow.set_tags({CANDIDATE_TAG: result.family, CANDIDATE_STATUS_TAG: result.status})
        mlflow.log_params({"family": result.family, "estimator": estimator})
        mlflow.log_metric("duration_s", result.seconds)
        if result.status != "ok":
            mlflow.set_tag(ERROR_TAG, result.error[:5000])
            mlflow.end_run("FAILED")
            return
        best = result.best
        mlflow.log_params({f"best.{k}": v for k, v in best["params"].items()} | {"combos": len(result.rows)})
        mlflow.log_metrics({k: v for k, v in best.items() if isinstance(v, float)})
        mlflow.log_table(pd.DataFrame(result.rows).astype({"params": str}), "grid.json")


if __name__ == "__main__":
    sys.exit(run_step("select", select, Path(__file__).resolve().parents[1]))
