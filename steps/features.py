"""Step `features`: choose K for the geo clusters on train, write feature_spec.json."""

import json
import logging
import sys
from pathlib import Path

import mlflow
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from housing_mlops.features.clusters import silhouette_scan
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec, feature_spec_for
from housing_mlops.modeling.evaluation import cross_validate
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.reporting import plots

log = logging.getLogger(__name__)


def features(ctx: StepContext) -> None:
    data, cfg = ctx.cfg.data, ctx.cfg.features
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    imputation = json.loads(ctx.input("impute", "imputation.json").read_text())
    X, y = train[data.features()], train[data.target]

    def spec_for(k: int) -> FeatureSpec:
        return feature_spec_for(ctx.cfg, {"strategy": imputation["strategy"], "params": imputation["params"]}, k)

    ks = list(range(cfg.k_min, cfg.k_max + 1, cfg.k_step))
    weights = y if cfg.weighted_by_target else None
    scan = silhouette_scan(X[data.features("geo")], ks, cfg.silhouette_sample, cfg.seed, cfg.n_init, weights)
    best_silhouette = int(scan.loc[scan["silhouette"].idxmax(), "k"])
    cv_rows = []
    if cfg.selection == "cv":
        reference = HistGradientBoostingRegressor(random_state=cfg.seed)
        for k in sorted({*cfg.cv_ks, best_silhouette}):
            model = Pipeline([("preprocess", build_preprocessor(spec_for(k))), ("model", reference)])
            scores = cross_validate(model, X, y, cfg.cv_folds, cfg.seed)
            cv_rows.append({"k": k, "cv_wmape": scores["wmape"].mean(), "cv_wmape_std": scores["wmape"].std()})
            log.info(f"K={k}: reference CV wMAPE {cv_rows[-1]['cv_wmape']:.4f}")
    cv = pd.DataFrame(cv_rows, columns=["k", "cv_wmape", "cv_wmape_std"])
    chosen = int(cv.loc[cv["cv_wmape"].idxmin(), "k"]) if not cv.empty else best_silhouette
    spec = spec_for(chosen)
    ctx.output("feature_spec.json", lambda p: p.write_text(json.dumps(spec.to_dict(), indent=2)))

    search = scan.merge(cv, on="k", how="outer").sort_values("k")
    mlflow.log_table(search, "k_search.json")
    mlflow.log_figure(plots.k_search(scan, cv, chosen), "k_search.png")
    preview = build_preprocessor(spec).fit(X, y).transform(X.head(cfg.preview_rows))
    mlflow.log_table(preview.reset_index(drop=True), "preview.json")
    chosen_row = search.set_index("k").loc[chosen]
    mlflow.log_params({"n_clusters": chosen, "gamma": cfg.gamma, "selection": cfg.selection})
    mlflow.log_metrics(
        {"silhouette": chosen_row["silhouette"], "best_silhouette_k": best_silhouette}
        | ({"reference_cv_wmape": chosen_row["cv_wmape"]} if not cv.empty else {})
    )
    log.info(f"K={chosen} (silhouette best K={best_silhouette}), {preview.shape[1]} features")


if __name__ == "__main__":
    sys.exit(run_step("features", features, Path(__file__).resolve().parents[1]))
