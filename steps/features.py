"""Step `features`: choose K for the geo clusters on train, write feature_spec.json."""

import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd

from housing_mlops.modeling.k_search import choose_features
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots

log = logging.getLogger(__name__)


def features(ctx: StepContext) -> None:
    """Choose K on train and publish feature_spec.json with its search, plot and preview."""
    cfg = ctx.cfg.features
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    imputation = json.loads(ctx.input("impute", "imputation.json").read_text())
    choice = choose_features(ctx.cfg, train, imputation)
    search, chosen = choice.search, choice.search.chosen
    ctx.output("feature_spec.json", lambda p: p.write_text(json.dumps(choice.spec.to_dict(), indent=2)))

    table = search.table()
    mlflow.log_table(table, "k_search.json")
    mlflow.log_figure(plots.k_search(search.scan, search.cv, chosen), "k_search.png")
    mlflow.log_table(choice.preview.reset_index(drop=True), "preview.json")
    chosen_row = table.set_index("k").loc[chosen]
    mlflow.log_params({"n_clusters": chosen, "gamma": cfg.gamma, "selection": cfg.selection})
    mlflow.log_metrics(
        {"silhouette": chosen_row["silhouette"], "best_silhouette_k": search.best_silhouette}
        | ({"reference_cv_wmape": chosen_row["cv_wmape"]} if not search.cv.empty else {})
    )
    log.info(f"K={chosen} (silhouette best K={search.best_silhouette}), {choice.preview.shape[1]} features")


if __name__ == "__main__":
    sys.exit(run_step("features", features, Path(__file__).resolve().parents[1]))
