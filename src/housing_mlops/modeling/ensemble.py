"""The sweep's best trials averaged: which trials, and the average's out-of-fold score.

Trials differ in their model parameters and often in their features. The average keeps the best
trial's features and averages the members' regressors on them, so the registered model stays one
Pipeline (preprocessing + regressor); a member whose features differ from the best's is
cross-validated again on the best's, on the sweep's folds, so the score is the registered
model's own.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from sklearn.model_selection import cross_val_predict

from housing_mlops.config.modeling import ModelConfig
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.evaluation import folds
from housing_mlops.modeling.metrics import evaluate
from housing_mlops.modeling.tuning import split_params, tuned_params
from housing_mlops.modeling.zoo import build_estimator, make_pipeline


@dataclass(frozen=True)
class Ensemble:
    """The averaged trials (best first), their parameters, and the average's CV on the sweep's folds."""

    trials: list[int]
    params: list[dict[str, Any]]  # each member's estimator parameters
    member_cv_wmape: list[float]  # each member alone, on the best trial's features
    cv: dict[str, float]  # mean over folds of every metric of the averaged predictions
    predictions: np.ndarray  # the average's out-of-fold predictions, one per row


def members(study: optuna.Study, size: int) -> list[FrozenTrial]:
    """The `size` best complete trials by CV wMAPE (the earlier on a tie), one per set of model parameters.

    Trials that differ only in their features would average one regressor with itself.
    """
    complete = sorted(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: (t.value, t.number)
    )
    chosen: list[FrozenTrial] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for trial in complete:
        key = tuple(sorted(split_params(trial.params)[0].items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == size:
            break
    return chosen


def average(
    chosen: list[FrozenTrial],
    X: pd.DataFrame,
    y: pd.Series,
    spec: FeatureSpec,
    model: ModelConfig,
    base_params: dict[str, Any],
    n_folds: int,
    seed: int,
    n_jobs: int,
    saved: Callable[[int], np.ndarray | None],
) -> Ensemble:
    """Average the `chosen` trials' regressors on the first's features; score it on the sweep's folds.

    `saved(n)` gives trial n's own out-of-fold predictions when this machine kept them: they are
    reused for a member whose features are the first's, any other member is cross-validated.
    """
    best_features = split_params(chosen[0].params)[1]
    features_spec = dataclasses.replace(spec, **best_features)
    splits = list(folds(len(X), n_folds, seed))
    params = [tuned_params(model, base_params, trial.params) for trial in chosen]
    predictions = []
    for trial, estimator_params in zip(chosen, params, strict=True):
        own = saved(trial.number) if split_params(trial.params)[1] == best_features else None
        if own is None:
            pipeline = make_pipeline(features_spec, build_estimator(model, estimator_params))
            own = np.asarray(cross_val_predict(pipeline, X, y, cv=splits, n_jobs=n_jobs))
        predictions.append(own)
    averaged = np.mean(predictions, axis=0)  # VotingRegressor's own average
    return Ensemble(
        trials=[t.number for t in chosen],
        params=params,
        member_cv_wmape=[_cv(y, p, splits)["wmape"] for p in predictions],
        cv=_cv(y, averaged, splits),
        predictions=averaged,
    )


def _cv(y: pd.Series, predictions: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Every metric's mean over the folds, as a trial's `cv_<metric>` attributes are."""
    truth = y.to_numpy()
    per_fold = pd.DataFrame([evaluate(truth[test], predictions[test]) for _, test in splits])
    return {metric: float(per_fold[metric].mean()) for metric in per_fold.columns}
