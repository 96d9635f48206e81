"""The sweep survives a SIGKILL mid-study: re-running completes the same study to exactly
`sweep.n_trials` finished trials."""

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import FAST_OPTIONS, Store

pytestmark = pytest.mark.e2e
TRIALS = 12


def trial_runs(store: Store) -> list:
    return [r for r in store.runs() if "housing.trial" in r.data.tags]


def test_sigkill_during_sweep_then_rerun_completes_the_study(store: Store, tmp_path: Path) -> None:
    steps = ("-P", "steps=ingest,split,impute,features,select,sweep")
    cmd = store.command(*steps, hydra=f"{FAST_OPTIONS} sweep.n_trials={TRIALS}")
    process = subprocess.Popen(
        cmd, env=store.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 400
    while len(trial_runs(store)) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert process.poll() is None, "the pipeline ended before the sweep could be interrupted"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = len(trial_runs(store))
    assert 3 <= killed_at < TRIALS

    store.mlflow_run(*steps, hydra=f"{FAST_OPTIONS} sweep.n_trials={TRIALS}")
    storage = f"sqlite:///{Path(store.uri.removeprefix('sqlite:///')).parent / 'optuna' / 'studies.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    states = [t.state for t in study.trials]
    finished = [s for s in states if s.is_finished()]
    assert len(finished) == TRIALS, states
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert sum(s == optuna.trial.TrialState.FAIL for s in states) <= 1  # the trial the kill interrupted
    sweep = store.runs("sweep")[0]
    assert sweep.info.status == "FINISHED"
    counts = {k: sweep.data.metrics[f"trials_{k}"] for k in ("complete", "pruned", "fail")}
    assert sum(counts.values()) == TRIALS and counts["complete"] >= 1
    # each trial the rerun finished is a nested run under it, pruned ones marked KILLED
    nested = [r for r in trial_runs(store) if r.data.tags["mlflow.parentRunId"] == sweep.info.run_id]
    assert nested, "the resumed sweep logs its trials as nested runs"
    assert {r.data.tags["housing.trial.state"] for r in nested} <= {"COMPLETE", "PRUNED", "FAIL"}
