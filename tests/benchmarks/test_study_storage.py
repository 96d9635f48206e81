"""The study-storage benchmark: the same study on each storage, every trial recorded."""

import json

import optuna
import pytest

from benchmarks import study_storage


def test_each_storage_is_timed_once_per_repeat(capsys: pytest.CaptureFixture[str]) -> None:
    assert study_storage.main(["--trials", "3", "--repeats", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["trials"] == 3
    assert {k for k in figures if k.endswith("_s")} == {"memory_s", "sqlite_default_s", "sqlite_as_opened_s"}
    assert all(figures[k] >= 0 for k in figures)


def test_the_objective_asks_what_the_sweep_asks_and_reports_every_rung() -> None:
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.optimize(study_storage.objective, n_trials=2)
    trial = study.trials[0]
    assert len(trial.params) == 8
    assert sorted(trial.intermediate_values) == list(study_storage.RUNGS)
    assert trial.state == optuna.trial.TrialState.COMPLETE
