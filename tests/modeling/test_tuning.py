"""The sweep's parts with real Optuna and real sklearn: pruning, failing trials, seeding, resume."""

import pandas as pd
import pytest
from optuna import create_study
from optuna.trial import TrialState

from housing_mlops.config.modeling import ModelConfig, SpaceParam
from housing_mlops.config.schema import Config
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.modeling import tuning

FOLDS = 3


def scripted(per_trial: list[list[float]], pruner: str):
    """An objective whose trial n reports the fold wMAPEs per_trial[n] through fold_reporter."""

    def objective(trial) -> float:
        values = per_trial[trial.number]
        report = tuning.fold_reporter(trial, pruner)
        for i, value in enumerate(values):
            report(i, {"wmape": value})
        return sum(values) / len(values)

    return objective


def test_median_pruner_stops_a_trial_worse_than_the_median_after_one_fold() -> None:
    study = create_study(pruner=tuning.make_pruner("median", n_startup_trials=2))
    good = [[0.20, 0.21, 0.19], [0.22, 0.20, 0.21], [0.19, 0.19, 0.19]]
    study.optimize(scripted([*good, [0.90, 0.10, 0.10]], "median"), n_trials=4)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.PRUNED]
    pruned = study.trials[-1]
    assert pruned.user_attrs == {"fold_0_wmape": 0.90, tuning.PRUNED_ATTR: "after fold 0"}
    assert pruned.intermediate_values == {0: 0.90}
    assert study.best_value == pytest.approx(0.19)
    # Optuna keeps the last running mean as a pruned trial's value; the sweep's table does not
    frame = tuning.trials_frame(study)
    assert frame["value"].isna().tolist() == [False, False, False, True]


def test_median_pruner_compares_running_means_not_single_folds() -> None:
    study = create_study(pruner=tuning.make_pruner("median", n_startup_trials=2))
    # fold 1 alone (0.25) is worse than every other fold 1, but the running mean (0.20) is not
    per_trial = [[0.20, 0.21, 0.20], [0.22, 0.22, 0.22], [0.15, 0.25, 0.20]]
    study.optimize(scripted(per_trial, "median"), n_trials=3)
    assert study.trials[-1].state == TrialState.COMPLETE
    assert study.trials[-1].intermediate_values == {0: 0.15, 1: 0.20, 2: pytest.approx(0.20)}


def test_wilcoxon_pruner_sees_each_fold_value() -> None:
    study = create_study(pruner=tuning.make_pruner("wilcoxon", n_startup_trials=2))
    worse = [0.50, 0.60, 0.70, 0.80, 0.90]
    study.optimize(scripted([[0.10] * 5, worse], "wilcoxon"), n_trials=2)
    pruned = study.trials[1]
    assert pruned.state == TrialState.PRUNED
    assert len(pruned.intermediate_values) < len(worse)
    # each fold's own value, not the running mean the median pruner gets
    assert pruned.intermediate_values == {i: worse[i] for i in pruned.intermediate_values}


@pytest.fixture(scope="module")
def tiny(full_data: pd.DataFrame, cfg: Config):
    sample = full_data.sample(300, random_state=1)
    spec = feature_spec_from_config(cfg, n_clusters=4, imputer={"strategy": "median", "params": {}}, seed=0)
    return sample[cfg.data.features()], sample[cfg.data.target], spec


def ridge(solvers: list[str]) -> ModelConfig:
    return ModelConfig(
        estimator="sklearn.linear_model.Ridge",
        space={
            "alpha": SpaceParam(type="float", low=0.01, high=100.0, log=True),
            "solver": SpaceParam(type="categorical", choices=solvers),
        },
    )


FEATURES = {"n_clusters": SpaceParam(type="int", low=2, high=6)}


def test_a_trial_that_raises_is_recorded_failed_and_the_study_goes_on(tiny) -> None:
    X, y, spec = tiny
    objective = tuning.cv_objective(X, y, spec, ridge(["auto", "no-such-solver"]), {}, FEATURES, FOLDS, 0, "none")
    study = create_study(
        sampler=tuning.make_sampler("random", seed=3, n_startup_trials=0), pruner=tuning.make_pruner("none", 0)
    )
    study.optimize(objective, n_trials=8, catch=(Exception,))
    by_solver = {s: [t for t in study.trials if t.params["solver"] == s] for s in ("auto", "no-such-solver")}
    assert by_solver["auto"], "the seeded draw covers both choices"
    assert by_solver["no-such-solver"], "the seeded draw covers both choices"
    for trial in by_solver["no-such-solver"]:
        assert trial.state == TrialState.FAIL
        assert trial.value is None
        assert tuning.failure_reason(trial).startswith("InvalidParameterError: The 'solver' parameter")
    for trial in by_solver["auto"]:
        assert trial.state == TrialState.COMPLETE
        assert trial.value == pytest.approx(trial.user_attrs["cv_wmape"])
        assert 0 < trial.value < 1
        assert trial.user_attrs["cv_rmse"] > 0
        assert set(trial.user_attrs) >= {f"fold_{i}_wmape" for i in range(FOLDS)}
    assert tuning.finished_trials(study) == 8


def test_the_same_seed_draws_the_same_trials_and_scores(tiny) -> None:
    X, y, spec = tiny
    model = ridge(["auto", "svd"])

    def run(kind: str, seed: int) -> list[tuple]:
        study = create_study(
            sampler=tuning.make_sampler(kind, seed=seed, n_startup_trials=3), pruner=tuning.make_pruner("none", 0)
        )
        study.optimize(tuning.cv_objective(X, y, spec, model, {}, FEATURES, FOLDS, 0, "none"), n_trials=6)
        return [(t.params, t.value) for t in study.trials]

    assert run("tpe", 7) == run("tpe", 7)
    assert run("tpe", 7) != run("tpe", 8)
    assert run("random", 7) != run("tpe", 7)


def test_stale_running_trials_are_failed_with_a_reason_before_a_resume(tmp_path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    study.ask()  # a worker took a trial, then was killed
    assert tuning.finished_trials(study) == 2
    assert tuning.fail_stale_trials(study._storage, study) == 1
    stale = study.trials[-1]
    assert stale.state == TrialState.FAIL
    assert tuning.failure_reason(stale).startswith("left running")
    assert tuning.finished_trials(study) == 3


@pytest.mark.parametrize(("total", "workers", "expected"), [(50, 1, [50]), (7, 2, [4, 3]), (1, 3, [1, 0, 0])])
def test_shares_add_up(total: int, workers: int, expected: list[int]) -> None:
    assert tuning.shares(total, workers) == expected


def test_the_grid_point_is_the_grid_winner_clipped_into_the_space_with_the_spec_features(cfg: Config) -> None:
    model = cfg.models.zoo["hist_gradient_boosting"]
    spec = feature_spec_from_config(cfg, n_clusters=35, gamma=2.5, imputer={"strategy": "median", "params": {}})
    point = tuning.grid_point(model, {"learning_rate": 0.1, "max_leaf_nodes": 63}, spec, cfg.sweep.feature_space)
    assert point == {
        "learning_rate": 0.1,
        "max_leaf_nodes": 63,
        "min_samples_leaf": 20,  # sklearn's default
        "l2_regularization": model.space["l2_regularization"].low,  # default 0.0 is off the log scale
        "features.n_clusters": 35,
        "features.gamma": 2.5,
    }


def test_a_trial_splits_into_model_and_feature_parameters(cfg: Config) -> None:
    model = cfg.models.zoo["decision_tree"]
    trial = {"max_depth": 9, "features.n_clusters": 12, "features.gamma": 0.5}
    assert tuning.split_params(trial) == ({"max_depth": 9}, {"n_clusters": 12, "gamma": 0.5})
    tuned = tuning.tuned_params(model, {"max_depth": 12, "min_samples_leaf": 5}, trial)
    assert tuned == {"random_state": 42, "max_depth": 9, "min_samples_leaf": 5}
    assert list(tuned) == ["random_state", "max_depth", "min_samples_leaf"], "fixed, then grid, then trial"
