"""The W&B mirror's pure parts: trial specs, strict-JSON config values, the disabled mode
and a W&B error turned into one warning. Nothing here reaches a W&B server."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from housing_mlops.config.schema import WandbConfig
from housing_mlops.integrations import wandb_mirror as mirror
from tests.conftest import ROOT


def _trial(number: int, state: TrialState, **attrs: float) -> Any:
    start = datetime(2026, 1, 1, 12, 0, 0)
    trial = create_trial(
        state=state,
        value=0.2 if state == TrialState.COMPLETE else None,
        params={"learning_rate": 0.1, "features.gamma": 1.5},
        distributions={
            "learning_rate": FloatDistribution(0.01, 1.0, log=True),
            "features.gamma": FloatDistribution(0.3, 10.0),
        },
        user_attrs=attrs,
        system_attrs={"fail_reason": "ValueError: boom"} if state == TrialState.FAIL else {},
    )
    trial.number = number
    trial.datetime_start = start
    trial.datetime_complete = None if state == TrialState.RUNNING else start + timedelta(seconds=3)
    return trial


def test_trial_specs_cover_finished_states_only() -> None:
    trials = [
        _trial(0, TrialState.COMPLETE, fold_0_wmape=0.21, cv_wmape=0.2, cv_rmse=50000.0),
        _trial(1, TrialState.PRUNED, fold_0_wmape=0.4),
        _trial(2, TrialState.FAIL),
        _trial(3, TrialState.RUNNING),
    ]
    specs = mirror.trial_specs(trials, "pipe", "sweeprun", "study-x")
    assert [(s.name, s.id, s.failed) for s in specs] == [
        ("trial-000", "sweeprun-trial-000", False),
        ("trial-001", "sweeprun-trial-001", False),
        ("trial-002", "sweeprun-trial-002", True),
    ]
    complete, pruned, failed = specs
    assert complete.summary == {
        "fold_0_wmape": 0.21,
        "cv_wmape": 0.2,
        "cv_rmse": 50000.0,
        "duration_s": 3.0,
        "state": "COMPLETE",
    }
    assert pruned.summary == {"fold_0_wmape": 0.4, "duration_s": 3.0, "state": "PRUNED"}
    assert failed.notes == "ValueError: boom"
    assert failed.summary["state"] == "FAIL"
    assert complete.config == {
        "learning_rate": 0.1,
        "features.gamma": 1.5,
        "optuna": {"study": "study-x", "trial": 0, "sweep_run_id": "sweeprun"},
    }
    assert {s.group for s in specs} == {"pipe"}
    assert {s.job_type for s in specs} == {mirror.TRIAL_JOB}


def test_config_values_become_strict_json() -> None:
    assert mirror.jsonable({"bins": [0.0, float("inf")], "x": (1, float("nan")), "k": None}) == {
        "bins": [0.0, "inf"],
        "x": [1, "nan"],
        "k": None,
    }


@pytest.mark.e2e  # a fresh interpreter: the only way to see what an import pulls in
def test_disabled_mirror_never_imports_wandb() -> None:
    code = (
        "import sys; from housing_mlops.integrations import wandb_mirror as mirror; "
        "from housing_mlops.pipeline import runner; "
        "from housing_mlops.config.schema import WandbConfig; "
        "spec = mirror.RunSpec('i', 'n', 'j', 'g', {}, {}); "
        "assert mirror.publish(WandbConfig('disabled', 'housing-mlops', None, None), [spec], 'x') == []; "
        "assert 'wandb' not in sys.modules, 'wandb imported'"
    )
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_wandb_error_is_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    cfg = WandbConfig(mode="offline", project="housing-mlops", entity=None, dir=str(tmp_path))
    bad = mirror.RunSpec("a/b", "n", "j", "g", {}, {})  # W&B rejects '/' in a run id
    good = mirror.RunSpec("ok-1", "n", "j", "g", {}, {})
    assert mirror.publish(cfg, [bad, good], "the test runs") == []
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("warning: W&B mirror of the test runs failed after 0 of 2 run(s) (UsageError")
