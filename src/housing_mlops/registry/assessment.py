"""The final fit and the one scoring of the sealed test set: pure, no MLflow."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline

from housing_mlops.config.data import DataConfig
from housing_mlops.config.registry import ReferenceConfig
from housing_mlops.data.split import strata
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling import leaf_values
from housing_mlops.modeling.evaluation import segment_wmape
from housing_mlops.modeling.metrics import evaluate
from housing_mlops.modeling.zoo import averaged, estimator_from, make_pipeline


@dataclass(frozen=True)
class Assessment:
    """What the sealed test set says about one fitted model."""

    predicted: pd.Series  # indexed like the test set
    scores: dict[str, float]
    by_segment: pd.DataFrame
    importances: pd.Series
    importance_title: str


def tuned_pipeline(best: dict[str, Any]) -> Pipeline:
    """The sweep's Pipeline (preprocessing + regressor), unfitted: the best trial's, or its average of `members`."""
    members = best.get("members")
    if members:
        regressor = averaged([(f"trial_{m['trial']}", estimator_from(best["estimator"], m["params"])) for m in members])
    else:
        regressor = estimator_from(best["estimator"], best["params"])
    return make_pipeline(FeatureSpec.from_dict(best["feature_spec"]), regressor)


def fit_final(best: dict[str, Any], train: pd.DataFrame, data: DataConfig) -> Pipeline:
    """Fit the sweep's best Pipeline on the whole train set."""
    leaf_values.install()
    return tuned_pipeline(best).fit(train[data.features()], train[data.target])


def out_of_fold(best: dict[str, Any], train: pd.DataFrame, data: DataConfig, cfg: ReferenceConfig) -> np.ndarray:
    """The sweep's best Pipeline's out-of-fold predictions on train, one per training row.

    What the model predicts for rows it did not see, as it will for served rows: the distribution
    monitoring compares served predictions with (the in-sample fit would be too close to the labels).
    """
    folds = KFold(cfg.folds, shuffle=True, random_state=cfg.seed)
    X, y = train[data.features()], train[data.target]
    return np.asarray(cross_val_predict(tuned_pipeline(best), X, y, cv=folds, n_jobs=cfg.n_jobs))


def reference_predictions(
    best: dict[str, Any], train: pd.DataFrame, data: DataConfig, cfg: ReferenceConfig, swept: np.ndarray | None
) -> tuple[np.ndarray, str]:
    """The out-of-fold predictions for the monitoring reference, and where they come from.

    The sweep's own, `swept` (the registered model's: its best trial's or its average's), when its
    folds are the reference's: the same folds, fits and rows give the same predictions, so the
    folds are not fitted twice. Otherwise `out_of_fold` fits them.
    """
    study = best.get("study", {})
    if (
        swept is not None
        and len(swept) == len(train)
        and (study.get("folds"), study.get("seed")) == (cfg.folds, cfg.seed)
    ):
        members = [m["trial"] for m in best.get("members", [])]
        which = f"average of trials {members}" if members else f"trial {study.get('best_trial')}"
        return np.asarray(swept, dtype=float), f"the sweep's {which}"
    return out_of_fold(best, train, data, cfg), f"{cfg.folds} folds refitted"


def assess(
    model: Pipeline,
    test: pd.DataFrame,
    data: DataConfig,
    importance_rows: int,
    predict: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> Assessment:
    """Score `model` on the sealed test set: metrics, wMAPE per segment and feature importances.

    `predict` (default: the model's own) computes the permutation importances: the compiled variant,
    checked against the model, does it in a fraction of the time.
    """
    X_test, y_test = test[data.features()], test[data.target]
    predicted = model.predict(X_test)
    scores = evaluate(y_test, predicted)
    segments = test[data.features("categorical")].assign(income_category=strata(test, data).astype(str))
    by_segment = segment_wmape(segments, y_test, predicted)
    values, title = importances(model, X_test, y_test, importance_rows, predict or model.predict)
    return Assessment(pd.Series(predicted, index=y_test.index), scores, by_segment, values, title)


def importances(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, rows: int, predict: Callable[[pd.DataFrame], np.ndarray]
) -> tuple[pd.Series, str]:
    """The regressor's own impurity importances, else permutation importances on a test sample (by `predict`)."""
    estimator = model[-1]
    if hasattr(estimator, "feature_importances_"):
        names = model[:-1].get_feature_names_out()
        return (
            pd.Series(estimator.feature_importances_, index=names),
            "Impurity importance of engineered features",
        )
    sample = X.sample(min(rows, len(X)), random_state=0)
    result = permutation_importance(
        model,
        sample,
        y.loc[sample.index],
        n_repeats=3,
        random_state=0,
        scoring=lambda _, rows, truth: -mean_absolute_error(truth, predict(rows)),
    )
    return (
        pd.Series(result.importances_mean, index=sample.columns),
        "Permutation importance of raw inputs (MAE increase, test sample)",
    )


def segment_metric(segment: str, value: str) -> str:
    """MLflow metric name of one segment's test wMAPE (MLflow rejects spaces and '<')."""
    return f"test_wmape.{segment}.{value}".replace(" ", "_").replace("<", "lt")
