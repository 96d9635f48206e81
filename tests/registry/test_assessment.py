"""The final fit and the one scoring of the sealed test set, on a sample of the real data."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from housing_mlops.config.modeling import SpaceParam
from housing_mlops.config.schema import Config
from housing_mlops.data.split import split
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.pipeline.sweep import run_sweep
from housing_mlops.registry.assessment import assess, fit_final, out_of_fold, reference_predictions, segment_metric


@pytest.fixture(scope="module")
def frames(full_data: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(full_data.sample(2000, random_state=0), cfg.data, cfg.split)


def best(cfg: Config, estimator: str, params: dict) -> dict:
    spec = feature_spec_from_config(
        cfg, imputer={"strategy": "median", "params": {}}, ratios=[], log_columns=[], n_clusters=5, neighbor_ks=[]
    )
    return {"feature_spec": spec.to_dict(), "estimator": estimator, "params": params}


def test_linear_model_scores_and_segments_match_a_hand_computation(frames: tuple, cfg: Config) -> None:
    train, test = frames
    model = fit_final(best(cfg, "sklearn.linear_model.Ridge", {"alpha": 1.0}), train, cfg.data)
    result = assess(model, test, cfg.data, importance_rows=100)

    y = test[cfg.data.target].to_numpy()
    predicted = model.predict(test[cfg.data.features()])
    assert np.isfinite(result.predicted).all()
    assert result.predicted.index.equals(test.index)
    np.testing.assert_allclose(result.predicted.to_numpy(), predicted, rtol=1e-12)
    assert result.scores["wmape"] == pytest.approx(np.abs(y - predicted).sum() / np.abs(y).sum(), rel=1e-12)
    assert result.scores["rmse"] == pytest.approx(np.sqrt(np.mean((y - predicted) ** 2)), rel=1e-12)
    assert 0.1 < result.scores["wmape"] < 0.4  # a linear model on the sample: far from perfect, far from useless

    ocean = result.by_segment[result.by_segment["segment"] == "ocean_proximity"].set_index("value")
    inland = test["ocean_proximity"] == "INLAND"
    expected = np.abs(y[inland] - predicted[inland]).sum() / y[inland].sum()
    assert ocean.loc["INLAND", "wmape"] == pytest.approx(expected, rel=1e-12)
    income = result.by_segment[result.by_segment["segment"] == "income_category"]
    assert income["rows"].sum() == ocean["rows"].sum() == len(test)

    # Ridge has no importances of its own: permutation importance over the raw inputs
    assert result.importance_title.startswith("Permutation importance")
    assert list(result.importances.index) == cfg.data.features()
    assert result.importances.idxmax() == "median_income"


def test_tree_model_reports_its_impurity_importances(frames: tuple, cfg: Config) -> None:
    train, test = frames
    params = {"n_estimators": 10, "max_depth": 6, "random_state": 0, "n_jobs": 1}
    model = fit_final(best(cfg, "sklearn.ensemble.RandomForestRegressor", params), train, cfg.data)
    result = assess(model, test, cfg.data, importance_rows=100)
    assert result.importance_title.startswith("Impurity importance")
    assert list(result.importances.index) == list(model[:-1].get_feature_names_out())
    assert result.importances.sum() == pytest.approx(1.0)
    assert np.isfinite(result.predicted).all()
    assert result.scores["wmape"] < 0.4


def test_segment_metric_names_are_valid_mlflow_keys() -> None:
    assert segment_metric("ocean_proximity", "<1H OCEAN") == "test_wmape.ocean_proximity.lt1H_OCEAN"
    assert segment_metric("income_category", "3") == "test_wmape.income_category.3"


def test_out_of_fold_predictions_come_from_models_that_never_saw_the_row(frames: tuple, cfg: Config) -> None:
    train, _ = frames
    spec = best(cfg, "sklearn.linear_model.Ridge", {"alpha": 1.0})
    reference = cfg.registry.reference
    oof = out_of_fold(spec, train, cfg.data, reference)
    assert oof.shape == (len(train),)
    y = train[cfg.data.target].to_numpy()
    in_sample = fit_final(spec, train, cfg.data).predict(train[cfg.data.features()])
    # held-out rows are predicted worse than the rows a model was fitted on, never identically
    assert np.abs(y - oof).mean() > np.abs(y - in_sample).mean()
    assert not np.allclose(oof, in_sample)
    # the folds are seeded and the result does not depend on how many run at once (to the last
    # bits of BLAS, whose thread count differs between the worker processes and this one)
    sequential = out_of_fold(spec, train, cfg.data, dataclasses.replace(reference, n_jobs=1))
    np.testing.assert_allclose(oof, sequential, rtol=1e-12)
    other = out_of_fold(spec, train, cfg.data, dataclasses.replace(reference, seed=reference.seed + 1))
    assert not np.array_equal(oof, other)


@pytest.mark.parametrize("size", [1, 3])
def test_the_reference_takes_the_sweeps_out_of_fold_predictions_only_when_they_are_the_same(
    frames: tuple, cfg: Config, tmp_path, size: int
) -> None:
    train, _ = frames
    X, y = train[cfg.data.features()], train[cfg.data.target]
    spec = feature_spec_from_config(cfg, imputer={"strategy": "median", "params": {}}, n_clusters=4, seed=0)
    reference = cfg.registry.reference
    boosting = cfg.models.zoo["hist_gradient_boosting"]
    space = {
        "learning_rate": SpaceParam(type="float", low=0.05, high=0.3),
        "max_iter": SpaceParam(type="int", low=20, high=60, step=20),
    }
    sweep = dataclasses.replace(
        cfg.sweep,
        n_trials=4,
        n_startup_trials=1,
        ensemble=size,
        folds=reference.folds,
        seed=reference.seed,
        fidelity=dataclasses.replace(cfg.sweep.fidelity, min_resource=20),
        feature_space={"n_clusters": SpaceParam(type="int", low=3, high=6)},
    )
    model = dataclasses.replace(boosting, space=space)
    selection = {"family": "hist_gradient_boosting", "params": {"max_iter": 40}, "cv": {"wmape": 0.3}, "folds": 3}
    outcome = run_sweep(X, y, spec, model, selection, sweep, "s", None, tmp_path, progress_bar=False)
    assert outcome.predictions is not None
    record = outcome.record

    reused, source = reference_predictions(record, train, cfg.data, reference, outcome.predictions)
    members = [m["trial"] for m in record.get("members", [])]
    assert bool(members) == (size == 3)  # on this sample the average beats the best alone
    which = f"average of trials {members}" if members else f"trial {outcome.study.best_trial.number}"
    assert source == f"the sweep's {which}"
    # what the folds refitted from scratch predict (1-thread processes, as the sweep's): bit for bit
    np.testing.assert_array_equal(reused, out_of_fold(record, train, cfg.data, reference))
    values = [t.value for t in outcome.study.trials]
    assert len(set(values)) == len(values)  # distinct trials: only the best one's predictions refit equal

    # other folds than the reference's, or no predictions: the folds are refitted
    other = dataclasses.replace(reference, seed=reference.seed + 1)
    refitted, source = reference_predictions(record, train, cfg.data, other, outcome.predictions)
    assert source == f"{other.folds} folds refitted"
    assert not np.array_equal(refitted, reused)
    assert reference_predictions(record, train, cfg.data, reference, None)[1] == f"{reference.folds} folds refitted"
