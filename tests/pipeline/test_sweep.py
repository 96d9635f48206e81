"""The sweep library entry with real Optuna and real sklearn on a tiny sample: the grid winner
first, seeded trials, resume, a crashed worker, one log line per trial, no MLflow."""

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.ensemble import VotingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict

from housing_mlops.config.modeling import SpaceParam
from housing_mlops.config.schema import Config
from housing_mlops.errors import SweepError
from housing_mlops.features.spec import feature_spec_from_config
from housing_mlops.modeling import ensemble, tuning
from housing_mlops.modeling.evaluation import folds
from housing_mlops.modeling.metrics import wmape
from housing_mlops.pipeline.sweep import default_storage, run_sweep
from housing_mlops.registry import assessment

SELECTION = {"family": "ridge", "params": {"alpha": 1.0}, "cv": {"wmape": 0.3}, "folds": 2}


@pytest.fixture(scope="module")
def inputs(full_data: pd.DataFrame, cfg: Config):
    sample = full_data.sample(300, random_state=3)
    spec = feature_spec_from_config(
        cfg, n_clusters=4, imputer={"strategy": "median", "params": {}}, neighbor_ks=[3], seed=0
    )
    sweep = dataclasses.replace(
        cfg.sweep,
        n_trials=2,
        folds=2,
        n_startup_trials=1,
        timeout_s=None,
        n_jobs=1,
        feature_space={"n_clusters": SpaceParam(type="int", low=2, high=6)},
    )
    return sample[cfg.data.features()], sample[cfg.data.target], spec, cfg.models.zoo["ridge"], sweep


def sweep_in(tmp_path: Path, inputs, storage: str | None, **changes):
    X, y, spec, model, sweep = inputs
    cfg = dataclasses.replace(sweep, **changes)
    return run_sweep(X, y, spec, model, SELECTION, cfg, "s", storage, tmp_path, progress_bar=False)


def test_two_trials_start_from_the_grid_winner_and_record_the_best(tmp_path: Path, inputs) -> None:
    _, _, spec, model, sweep = inputs
    outcome = sweep_in(tmp_path, inputs, default_storage(tmp_path))
    study = outcome.study
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.trials[0].params == tuning.grid_point(model, SELECTION["params"], spec, sweep.feature_space)
    assert study.trials[0].params == {"alpha": 1.0, "features.n_clusters": 4}
    assert study.trials[1].params != study.trials[0].params
    record = outcome.record
    assert record["study"]["best_trial"] == study.best_trial.number
    assert record["cv"]["wmape"] == round(study.best_value, 6)
    assert 0 < study.best_value < 1
    assert record["grid_cv_wmape"] == round(study.trials[0].value, 6)
    assert record["params"]["alpha"] == study.best_params["alpha"]
    assert record["feature_spec"]["n_clusters"] == study.best_params["features.n_clusters"]
    assert (tmp_path / "optuna" / "studies.db").is_file()


def test_the_floors_in_memory_study_scores_exactly_as_the_steps_stored_one(tmp_path: Path, inputs) -> None:
    stored = sweep_in(tmp_path / "a", inputs, default_storage(tmp_path / "a")).study
    in_memory = sweep_in(tmp_path / "b", inputs, None).study
    assert [(t.params, t.value) for t in in_memory.trials] == [(t.params, t.value) for t in stored.trials]


def test_a_rerun_resumes_the_study_and_runs_only_the_missing_trials(tmp_path: Path, inputs) -> None:
    storage = default_storage(tmp_path)
    first = [t.params for t in sweep_in(tmp_path, inputs, storage).study.trials]
    resumed = sweep_in(tmp_path, inputs, storage, n_trials=3)
    assert [t.number for t in resumed.study.trials] == [0, 1, 2]
    assert resumed.stale == 0
    assert [t.params for t in resumed.study.trials[:2]] == first
    again = sweep_in(tmp_path, inputs, storage, n_trials=3)
    assert len(again.study.trials) == 3, "a finished study runs nothing more"


def test_without_a_terminal_each_trial_logs_one_line(tmp_path: Path, inputs, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="housing_mlops"):
        sweep_in(tmp_path, inputs, None)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("trial ")]
    assert len(lines) == 2
    assert lines[0].startswith("trial 0 COMPLETE: CV wMAPE ")
    assert "best" in lines[0]


def test_a_crashed_worker_fails_the_sweep_and_names_its_study(tmp_path: Path, inputs) -> None:
    X, y, spec, model, sweep = inputs
    cfg = dataclasses.replace(sweep, n_workers=2, n_trials=3)

    def die_in_a_worker(study, trial) -> None:
        if trial.number > 0:  # trial 0 runs before the fork, in this process
            os._exit(3)

    storage = default_storage(tmp_path)
    with pytest.raises(SweepError, match=r"crashed.*re-running resumes study s in sqlite:///"):
        run_sweep(X, y, spec, model, SELECTION, cfg, "s", storage, tmp_path, [die_in_a_worker], progress_bar=False)


def test_the_sweep_entry_loads_no_mlflow() -> None:
    code = "import sys, housing_mlops.pipeline.sweep; sys.exit('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_raising_trial_is_one_warning_line_without_optuna_s_traceback(tmp_path: Path, inputs, caplog) -> None:
    X, y, spec, model, sweep = inputs
    # sklearn rejects a negative alpha: those trials raise
    raising = dataclasses.replace(model, space={"alpha": SpaceParam(type="float", low=-10.0, high=10.0)})
    cfg = dataclasses.replace(sweep, n_trials=6, sampler="random", pruner="none")
    optuna_records = _Records()
    logging.getLogger("optuna").addHandler(optuna_records)  # Optuna's loggers do not propagate
    try:
        with caplog.at_level(logging.INFO, logger="housing_mlops"):
            study = run_sweep(X, y, spec, raising, SELECTION, cfg, "s", None, tmp_path, progress_bar=False).study
    finally:
        logging.getLogger("optuna").removeHandler(optuna_records)
    failed = [t.number for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "the seeded draws include a negative alpha"
    mine = [r for r in caplog.records if r.name.startswith("housing_mlops")]
    warnings = [r.getMessage() for r in mine if r.levelno == logging.WARNING]
    assert [int(m.split()[1]) for m in warnings] == failed
    assert all("FAIL: InvalidParameterError: The 'alpha' parameter" in m for m in warnings), warnings
    assert not [m for m in optuna_records.messages if "failed with" in m], optuna_records.messages
    trial_lines = [r.getMessage() for r in mine if r.getMessage().startswith("trial ")]
    assert len(trial_lines) == len(study.trials) == 6


def test_an_ensemble_averages_the_best_trials_and_its_cv_is_the_registered_models(
    tmp_path: Path, inputs, cfg: Config
) -> None:
    X, y, spec, _, sweep = inputs
    hgb = cfg.models.zoo["hist_gradient_boosting"]
    model = dataclasses.replace(
        hgb,
        # every feature at every split: on this sample such trials' average beats the best alone
        # (the next test covers an average that does not)
        fixed={**hgb.fixed, "max_iter": 30, "max_features": 1.0},
        space={
            "learning_rate": SpaceParam(type="float", low=0.05, high=0.3, log=True),
            "max_leaf_nodes": SpaceParam(type="int", low=4, high=16),
        },
    )
    selection = {"family": "hist_gradient_boosting", "params": {"loss": "absolute_error"}, "cv": {"wmape": 0.3}}
    cfg_sweep = dataclasses.replace(
        sweep, n_trials=6, ensemble=3, pruner="none", fidelity=dataclasses.replace(sweep.fidelity, min_resource=10)
    )
    outcome = run_sweep(X, y, spec, model, selection, cfg_sweep, "s", None, tmp_path, progress_bar=False)
    record, study = outcome.record, outcome.study
    chosen = ensemble.members(study, 3)
    assert [t.number for t in chosen] == [m["trial"] for m in record["members"]]
    assert chosen[0].number == study.best_trial.number
    assert len(chosen) == 3
    ranked = sorted(study.trials, key=lambda t: (t.value, t.number))
    assert [t.number for t in chosen] == [t.number for t in ranked if t in chosen]  # best first
    assert len({m["params"]["learning_rate"] for m in record["members"]}) == 3
    assert record["members"][0]["cv_wmape"] == round(study.best_value, 6)
    assert record["params"] == tuning.tuned_params(model, selection["params"], study.best_params)
    # the members refitted on the best trial's features are the registered Pipeline, on the sweep's folds
    pipeline = assessment.tuned_pipeline(record)
    assert isinstance(pipeline[-1], VotingRegressor)
    assert pipeline.get_params()["features__geo__n_clusters"] == study.best_params["features.n_clusters"]
    splits = list(folds(len(X), 2, record["study"]["seed"]))
    refitted = cross_val_predict(pipeline, X, y, cv=splits)
    np.testing.assert_allclose(outcome.predictions, refitted, rtol=1e-12)
    per_fold = [wmape(y.iloc[test], refitted[test]) for _, test in splits]
    assert record["cv"]["wmape"] == pytest.approx(np.mean(per_fold), abs=1e-6)
    assert record["cv"]["wmape"] < study.best_value  # registered because it beats the best alone


def test_an_average_no_better_than_the_best_trial_is_not_registered(tmp_path: Path, inputs, caplog) -> None:
    # ridge trials whose alphas barely differ: their average scores as the best does
    with caplog.at_level(logging.INFO, logger="housing_mlops.pipeline.sweep"):
        outcome = sweep_in(tmp_path, inputs, None, n_trials=6, ensemble=3)
    assert "not kept: the best trial alone scores" in caplog.text
    assert "members" not in outcome.record
    assert outcome.record["cv"]["wmape"] == round(outcome.study.best_value, 6)
    assert isinstance(assessment.tuned_pipeline(outcome.record)[-1], Ridge)
