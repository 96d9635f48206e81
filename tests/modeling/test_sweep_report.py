"""What a finished study reports: the one line per trial, counts, best_params.yaml, plots."""

import optuna
import pytest
from optuna.trial import TrialState

from housing_mlops.config.modeling import ModelConfig
from housing_mlops.config.schema import Config
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.modeling import sweep_report, tuning

SCORES = {0: 0.20, 1: "prune", 2: 0.15, 3: "raise"}


def scripted(trial: optuna.Trial) -> float:
    trial.suggest_float("alpha", 0.1, 10.0)
    trial.suggest_int("features.n_clusters", 5, 50)
    score = SCORES[trial.number]
    if score == "prune":
        trial.report(0.9, step=50)
        trial.set_user_attr(tuning.PRUNED_ATTR, "at max_iter=50")  # as the rung reporter does
        raise optuna.TrialPruned()
    if score == "raise":
        trial.set_user_attr(tuning.ERROR_ATTR, "ValueError: alpha must be >= 0")
        raise ValueError("alpha must be >= 0")
    trial.set_user_attr("cv_wmape", score)
    trial.set_user_attr("cv_rmse", 1e5 * score)
    return float(score)


@pytest.fixture(scope="module")
def study() -> optuna.Study:
    study = optuna.create_study(study_name="s", sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"alpha": 1.0, "features.n_clusters": 20})
    study.optimize(scripted, n_trials=4, catch=(ValueError,))
    return study


def test_one_line_per_trial_says_its_outcome_and_the_best_so_far(study: optuna.Study) -> None:
    lines = [sweep_report.trial_line(study, t).split(" (")[0] for t in study.trials]
    assert lines == [
        "trial 0 COMPLETE: CV wMAPE 0.2000",
        "trial 1 PRUNED: pruned at max_iter=50",
        "trial 2 COMPLETE: CV wMAPE 0.1500",
        "trial 3 FAIL: ValueError: alpha must be >= 0",
    ]
    assert sweep_report.trial_line(study, study.trials[3]).endswith(", best 0.1500 (trial 2)")
    assert "\n" not in "".join(sweep_report.trial_line(study, t) for t in study.trials)


def test_counts_and_the_grid_score_of_trial_0(study: optuna.Study) -> None:
    assert sweep_report.trial_counts(study) == {"complete": 2, "pruned": 1, "fail": 1}
    assert sweep_report.grid_score(study) == 0.20


def test_the_record_holds_the_best_trial_on_top_of_the_grid_winner(study: optuna.Study, cfg: Config) -> None:
    model = ModelConfig(estimator="sklearn.linear_model.Ridge", fixed={"max_iter": 100})
    spec = feature_spec_from_config(cfg, n_clusters=20, imputer={"strategy": "median", "params": {}})
    selection = {"family": "ridge", "params": {"alpha": 1.0, "tol": 0.01}, "cv": {"wmape": 0.25}}
    record = sweep_report.sweep_record(study, spec, selection, model, "random", 3, 5)
    best = study.trials[2]
    assert record["params"] == {"max_iter": 100, "alpha": best.params["alpha"], "tol": 0.01}
    assert record["features"] == {"n_clusters": best.params["features.n_clusters"]}
    assert record["feature_spec"]["n_clusters"] == best.params["features.n_clusters"]
    assert record["feature_spec"]["gamma"] == spec.gamma
    assert record["cv"] == {"wmape": 0.15, "rmse": 15000.0}
    assert record["study"] == {
        "name": "s",
        "best_trial": 2,
        "trials": {"complete": 2, "pruned": 1, "fail": 1},
        "sampler": "random",
        "folds": 3,
        "seed": 5,
    }
    assert record["grid_cv_wmape"] == 0.2
    assert record["select_cv_wmape"] == 0.25


def test_plots_need_two_distinct_complete_trials(study: optuna.Study) -> None:
    assert set(sweep_report.study_plots(study)) == {"optimization_history", "param_importances", "slice"}
    one = optuna.create_study()
    one.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert set(sweep_report.study_plots(one)) == {"optimization_history"}
    complete, pruned, fail = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL
    assert [t.state for t in study.trials] == [complete, pruned, complete, fail]
