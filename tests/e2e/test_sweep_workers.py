"""Two sweep workers on one study, with trials that raise: the real `mlflow run` on the sample,
on a copy of the trained store (ingest to features are reused; select and sweep run)."""

import itertools
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.conftest import FAST_OPTIONS, Trained

pytestmark = pytest.mark.e2e
TRIALS = 8
# Ridge with alpha drawn from [-10, 10]: sklearn rejects a negative alpha, so those trials raise.
RAISING_RIDGE = (
    "models.candidates=[ridge] models.zoo.ridge.space.alpha.log=false "
    "models.zoo.ridge.space.alpha.low=-10 models.zoo.ridge.space.alpha.high=10"
)


def test_two_workers_make_one_consistent_study_and_raising_trials_are_failed(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    hydra = (
        f"{FAST_OPTIONS} {RAISING_RIDGE} sweep.n_workers=2 sweep.n_trials={TRIALS} sweep.pruner=none sweep.ensemble=1"
    )
    done = store.mlflow_run("-P", "steps=sweep", hydra=hydra)
    assert "[features] cached" in done.stdout
    assert "[select] running" in done.stdout
    assert "[register]" not in done.stdout

    sweep, _ = store.runs("sweep")  # the new one, then the trained store's
    storage = f"sqlite:///{Path(store.uri.removeprefix('sqlite:///')).parent / 'optuna' / 'studies.db'}"
    study = optuna.load_study(study_name=sweep.data.params["study_name"], storage=storage)
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(TRIALS)), "no trial lost or run twice"
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans)), (
        "two workers ran trials at the same time"
    )
    raised = [t for t in trials if t.params["alpha"] < 0]
    assert raised, "the seeded draws include a negative alpha"
    for trial in trials:
        expected = TrialState.FAIL if trial.params["alpha"] < 0 else TrialState.COMPLETE
        assert trial.state == expected, (trial.number, trial.params)

    assert sweep.info.status == "FINISHED"
    assert sweep.data.metrics["trials_fail"] == len(raised)
    assert sweep.data.metrics["trials_complete"] == TRIALS - len(raised)
    nested = {
        int(r.data.tags["housing.trial"]): r
        for r in store.runs()
        if "housing.trial" in r.data.tags and r.data.tags["mlflow.parentRunId"] == sweep.info.run_id
    }
    assert sorted(nested) == list(range(TRIALS)), "one nested MLflow run per trial, from both workers"
    for trial in trials:
        run = nested[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == sweep.info.run_id
        assert float(run.data.params["alpha"]) == pytest.approx(trial.params["alpha"])
        if trial.state == TrialState.FAIL:
            assert run.info.status == "FAILED"
            assert "cv_wmape" not in run.data.metrics
            assert "alpha" in run.data.tags["housing.error"]
            assert "InvalidParameterError" in run.data.tags["housing.error"]
        else:
            assert run.info.status == "FINISHED"
            assert run.data.metrics["cv_wmape"] == pytest.approx(trial.value)

    best = yaml.safe_load(
        Path(store.client.download_artifacts(sweep.info.run_id, "best_params.yaml", str(tmp_path))).read_text()
    )
    assert best["study"]["best_trial"] == study.best_trial.number
    assert best["params"]["alpha"] == pytest.approx(study.best_params["alpha"])
    assert best["params"]["alpha"] >= 0
    assert best["cv"]["wmape"] == pytest.approx(study.best_value, abs=1e-6)
    assert best["study"]["trials"] == {"complete": TRIALS - len(raised), "pruned": 0, "fail": len(raised)}
