"""Registration's measurements of an averaged model (the sweep's `members`), on a sample of the real data."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import KFold, cross_val_predict
from threadpoolctl import threadpool_limits

from housing_mlops.config.schema import Config
from housing_mlops.data.split import split
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.registry.assessment import tuned_pipeline
from housing_mlops.registry.candidate import measure
from housing_mlops.serving import variants

HGB = "sklearn.ensemble.HistGradientBoostingRegressor"


def test_an_averaged_model_is_compiled_scored_and_referenced_as_one(
    full_data: pd.DataFrame, cfg: Config, tmp_path
) -> None:
    train, test = split(full_data.sample(1500, random_state=4), cfg.data, cfg.split)
    spec = feature_spec_from_config(cfg, imputer={"strategy": "median", "params": {}}, n_clusters=5, neighbor_ks=[5])
    members = [
        {"trial": 7, "params": {"max_iter": 30, "learning_rate": 0.1, "loss": "absolute_error", "random_state": 0}},
        {"trial": 3, "params": {"max_iter": 20, "learning_rate": 0.2, "loss": "absolute_error", "random_state": 0}},
    ]
    reference = cfg.registry.reference
    best = {
        "feature_spec": spec.to_dict(),
        "estimator": HGB,
        "params": members[0]["params"],
        "members": members,
        "study": {"best_trial": 7, "folds": reference.folds, "seed": reference.seed},
    }
    X, y = train[cfg.data.features()], train[cfg.data.target]
    folds = KFold(reference.folds, shuffle=True, random_state=reference.seed)
    with threadpool_limits(1):
        swept = cross_val_predict(tuned_pipeline(best), X, y, cv=folds)
        candidate = measure(best, train, test, cfg, tmp_path, swept)
    assert isinstance(candidate.model[-1], VotingRegressor)
    assert [name for name, _ in candidate.model[-1].estimators] == ["trial_7", "trial_3"]
    assert candidate.compiled.onnx is not None, candidate.compiled.reason
    assert candidate.compiled.parity is not None
    assert candidate.compiled.parity.passed
    assert candidate.hardware["served"] == variants.ONNX
    predicted = candidate.model.predict(test[cfg.data.features()])
    truth = test[cfg.data.target].to_numpy()
    assert candidate.assessment.scores["wmape"] == pytest.approx(np.abs(truth - predicted).sum() / truth.sum())
    assert candidate.reference_source == "the sweep's average of trials [7, 3]"
