"""Step `select`: cross-validate every candidate family's grid on train -> selection.json."""

import json
import logging
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.selection import CandidateResult, evaluate_grid, leaderboard, run_isolated, winner
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots
from housing_mlops.tags import CANDIDATE_STATUS_TAG, CANDIDATE_TAG, ERROR_TAG

log = logging.getLogger(__name__)


def select(ctx: StepContext) -> None:
    data, models, cfg = ctx.cfg.data, ctx.cfg.models, ctx.cfg.select
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    spec = FeatureSpec.from_dict(json.loads(ctx.input("features", "feature_spec.json").read_text()))
    X, y = train[data.features()], train[data.target]
    cache_dir = tempfile.mkdtemp(dir=ctx.workdir)  # fitted preprocessing shared by all families
    results: list[CandidateResult] = []
    for i, family in enumerate(models.candidates, start=1):
        model = models.zoo[family]
        args = (model, models.grid, spec, X, y, cfg.folds, cfg.seed, cfg.n_jobs, cache_dir)
        result = run_isolated(family, evaluate_grid, args, cfg.candidate_timeout_s)
        results.append(result)
        _log_candidate(result, model.estimator)
        score = (
            f"CV wMAPE {result.best['cv_wmape']:.4f} ± {result.best['cv_wmape_std']:.4f}"
            if result.status == "ok"
            else f"{result.status.upper()}: {result.error.splitlines()[0]}"
        )
        log.info(f"{i}/{len(models.candidates)} {family}: {score} ({result.seconds:.1f} s)")

    board = leaderboard(results)
    best = winner(board)
    ranked = board[board["status"] == "ok"]
    runner_up = f"; next best {ranked.iloc[1]['family']} {ranked.iloc[1]['cv_wmape']:.4f}" if len(ranked) > 1 else ""
    selection = {
        "family": best["family"],
        "estimator": models.zoo[best["family"]].estimator,
        "params": json.loads(best["params"]),
        "cv": {k.removeprefix("cv_"): round(float(best[k]), 6) for k in board if k.startswith("cv_")},
        "folds": cfg.folds,
        "why": f"lowest mean CV wMAPE over {cfg.folds} folds on train: {best['cv_wmape']:.4f}{runner_up}",
    }
    ctx.output("selection.json", lambda p: p.write_text(json.dumps(selection, indent=2)))
    mlflow.log_text(board.to_csv(index=False), "leaderboard.csv")  # timings: not digested
    if not ranked.empty:
        mlflow.log_figure(plots.leaderboard(board), "leaderboard.png")
    mlflow.log_params({"winner": best["family"], "grid": models.grid, "folds": cfg.folds})
    mlflow.log_metrics(
        {
            "best_cv_wmape": float(best["cv_wmape"]),
            "failed_candidates": int((board["status"] != "ok").sum()),
        }
    )
    log.info(f"winner {best['family']} {selection['params']}: {selection['why']}")
    columns = ["rank", "family", "status", "cv_wmape", "cv_wmape_std", "cv_rmse", "fit_s", "seconds"]
    log.info("\n" + board[columns].to_string(index=False))


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
