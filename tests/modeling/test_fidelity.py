"""Multi-fidelity CV with real sklearn and Optuna: rungs, warm-started folds equal to fresh fits,
the per-fold preprocessing cache, and successive halving on boosting rounds."""

import dataclasses

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.model_selection import KFold, cross_val_predict

from housing_mlops.config.modeling import ModelConfig, SpaceParam
from housing_mlops.config.schema import Config
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.modeling import fidelity, tuning
from housing_mlops.modeling.evaluation import cross_validate
from housing_mlops.modeling.zoo import make_pipeline

FOLDS = 3
HGB = "sklearn.ensemble.HistGradientBoostingRegressor"


def ignore(step: int, rows: list[dict[str, float]]) -> None:
    """An on_rung that only lets the rungs run."""


@pytest.mark.parametrize(
    ("final", "expected"),
    [(400, [50, 150, 400]), (450, [50, 150, 450]), (100, [50, 100]), (50, [50]), (30, [30])],
)
def test_rungs_grow_by_the_factor_and_end_at_the_trials_own_value(final: int, expected: list[int]) -> None:
    assert fidelity.rungs(final, 50, 3) == expected


@pytest.fixture(scope="module")
def small(full_data: pd.DataFrame, cfg: Config):
    sample = full_data.sample(600, random_state=2)
    spec = feature_spec_from_config(cfg, n_clusters=4, imputer={"strategy": "median", "params": {}}, seed=0)
    return sample[cfg.data.features()], sample[cfg.data.target], spec


def hgb(**params) -> object:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(random_state=0, early_stopping=False, **params)


def test_folds_grown_through_rungs_score_exactly_as_fresh_fits(small) -> None:
    X, y, spec = small
    pipeline = make_pipeline(spec, hgb(max_iter=60, learning_rate=0.2))
    seen: list[int] = []
    staged = fidelity.staged_cross_validate(
        pipeline,
        X,
        y,
        FOLDS,
        7,
        fidelity.Fidelity("max_iter", 10, 3),
        lambda step, rows: seen.append(step),
        fidelity.PrefixCache(),
        n_jobs=2,
    )
    fresh = cross_validate(pipeline, X, y, FOLDS, 7)
    assert seen == [10, 30, 60]
    for metric in ("wmape", "rmse", "mae"):
        assert staged.scores[metric].tolist() == fresh[metric].tolist()  # bit for bit: the registered model's scores
    oof = cross_val_predict(pipeline, X, y, cv=KFold(FOLDS, shuffle=True, random_state=7))
    assert staged.predictions.tolist() == oof.tolist()


def test_the_preprocessing_of_a_fold_is_fitted_once_per_distinct_parameters_branch_by_branch(small) -> None:
    X, y, spec = small
    cache = fidelity.PrefixCache()
    branches = len(make_pipeline(spec, hgb())[:-1]["features"].transformers)

    def run(**features: object) -> None:
        pipeline = make_pipeline(dataclasses.replace(spec, **features), hgb(max_iter=5))
        fidelity.staged_cross_validate(pipeline, X, y, FOLDS, 7, fidelity.Fidelity("max_iter", 5, 2), ignore, cache)

    # each fold: the imputer, each feature branch and the float32 rounding of each distinct features
    run(n_clusters=4)
    assert cache.fits == FOLDS * (2 + branches)
    run(n_clusters=4)
    assert cache.fits == FOLDS * (2 + branches)  # nothing refitted
    run(n_clusters=5, gamma=2.0)
    assert cache.fits == FOLDS * (4 + branches)  # only the cluster similarities (and their rounding)
    run(n_clusters=5, gamma=3.0)
    assert cache.fits == FOLDS * (5 + branches)  # gamma alone: the fitted KMeans transforms again
    run(n_clusters=4, gamma=3.0)
    assert cache.fits == FOLDS * (6 + branches)  # K=4's KMeans is still kept
    assert len(cache._entries) == FOLDS * (1 + branches + 3 + 4)  # an output per fold and (K, gamma) seen


@pytest.mark.parametrize("features", [{}, {"n_clusters": 6, "gamma": 3.0}, {"gamma": 3.0}, {"neighbor_ks": [2, 5]}])
def test_cached_preprocessing_equals_the_pipelines_own_exactly(small, features: dict) -> None:
    X, y, spec = small
    cache = fidelity.PrefixCache()
    fidelity.prefix_outputs(make_pipeline(spec, hgb())[:-1], 0, X[:400], y[:400], X[400:], cache)  # fills the cache
    prefix = make_pipeline(dataclasses.replace(spec, **features), hgb())[:-1]
    train, test = fidelity.prefix_outputs(prefix, 0, X[:400], y[:400], X[400:], cache)
    # as Pipeline.fit sees the train rows (the neighbour means leave each row out), then predict the test rows
    pd.testing.assert_frame_equal(train, prefix.fit_transform(X[:400], y[:400]), check_exact=True)
    pd.testing.assert_frame_equal(test, prefix.transform(X[400:]), check_exact=True)


def test_the_cache_drops_the_least_recently_used_outputs(small) -> None:
    X, y, spec = small
    cache = fidelity.PrefixCache(max_entries=4)
    fid = fidelity.Fidelity("max_iter", 5, 2)
    fidelity.staged_cross_validate(make_pipeline(spec, hgb(max_iter=5)), X, y, FOLDS, 7, fid, ignore, cache)
    assert len(cache._entries) == 4


def boosting(low: int = 20, high: int = 120) -> ModelConfig:
    return ModelConfig(
        estimator=HGB,
        fixed={"random_state": 0, "early_stopping": False},
        space={
            "learning_rate": SpaceParam(type="float", low=0.01, high=0.5, log=True),
            "max_iter": SpaceParam(type="int", low=low, high=high, step=20),
        },
        fidelity="max_iter",
    )


def test_successive_halving_stops_trials_at_their_first_rungs_and_records_where(small) -> None:
    X, y, spec = small
    model = boosting()
    fid = fidelity.Fidelity("max_iter", 20, 3)
    objective = tuning.cv_objective(X, y, spec, model, {}, {}, FOLDS, 0, "successive_halving", n_jobs=1, fidelity=fid)
    study = optuna.create_study(
        sampler=tuning.make_sampler("random", seed=1, n_startup_trials=0),
        pruner=tuning.make_pruner("successive_halving", 0, fid, 120),
    )
    study.optimize(objective, n_trials=10)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned
    assert complete
    for trial in pruned:
        last = max(trial.intermediate_values)
        assert last in (20, 60)  # a rung below the trial's own max_iter
        assert last < trial.params["max_iter"]
        assert trial.user_attrs[tuning.PRUNED_ATTR] == f"at max_iter={last}"
    for trial in complete:
        assert max(trial.intermediate_values) == trial.params["max_iter"]
        assert trial.value == pytest.approx(trial.user_attrs["cv_wmape"])


def test_a_family_without_fidelity_is_reported_fold_by_fold(small, cfg: Config) -> None:
    X, y, spec = small
    ridge = ModelConfig(estimator="sklearn.linear_model.Ridge", space={"alpha": SpaceParam("float", 0.1, 10.0)})
    fid, largest = tuning.fidelity_of(ridge, cfg.sweep)
    assert fid is None
    assert largest is None
    objective = tuning.cv_objective(X, y, spec, ridge, {}, {}, FOLDS, 0, "successive_halving")
    study = optuna.create_study(pruner=tuning.make_pruner("successive_halving", 0))
    study.optimize(objective, n_trials=2)
    assert set(study.trials[0].intermediate_values) == set(range(FOLDS))


def test_the_default_boosting_family_grows_its_rounds_from_the_sweeps_first_rung(cfg: Config) -> None:
    fid, largest = tuning.fidelity_of(cfg.models.zoo["hist_gradient_boosting"], cfg.sweep)
    assert fid == fidelity.Fidelity("max_iter", cfg.sweep.fidelity.min_resource, cfg.sweep.fidelity.reduction_factor)
    hgb = cfg.models.zoo["hist_gradient_boosting"]
    assert "max_iter" not in hgb.space, "the fidelity is grown by the pruner, not drawn (README: rounds are not drawn)"
    assert largest == hgb.fixed["max_iter"]
