"""Step hooks: the runner calls them with each outcome, never names them, and a failing hook
does not fail the step; the W&B mirror is a hook only when it is enabled."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config
from housing_mlops.errors import DataSourceError
from housing_mlops.integrations import wandb_mirror
from housing_mlops.pipeline import hooks
from housing_mlops.pipeline.context import StepContext
from housing_mlops.pipeline.runner import run_step
from housing_mlops.tags import ERROR_TAG, STEP_TAG
from tests.conftest import ROOT


def test_the_wandb_hook_is_installed_and_enabled_only_by_config() -> None:
    assert hooks.load(load_config(ROOT / "config", [])[0]) == []  # wandb=disabled is the default
    assert hooks.load(load_config(ROOT / "config", ["wandb=offline"])[0]) == [wandb_mirror.mirror_step]


def test_loading_the_hooks_of_a_disabled_mirror_never_imports_wandb() -> None:
    code = (
        "import sys; from pathlib import Path; from housing_mlops.config.loading import load_config; "
        "from housing_mlops.pipeline import hooks, runner; "
        f"assert hooks.load(load_config(Path({str(ROOT / 'config')!r}), [])[0]) == []; "
        "assert 'wandb' not in sys.modules, 'wandb imported'"
    )
    env = {**os.environ, "WANDB_MODE": "offline"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _ingest(tmp_path: Path, sample_csv: Path, body, step_hooks) -> int:
    argv = ["--hydra-options", f"data.source={sample_csv} data.sha256=null"]
    return run_step("ingest", body, ROOT, argv=argv, step_hooks=step_hooks)


def test_hooks_see_every_outcome_while_the_run_is_open(
    tmp_path: Path, sample_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[str, str, str | None]] = []

    def broken(ctx: StepContext, error: str | None) -> None:
        raise RuntimeError("service down")

    def record(ctx: StepContext, error: str | None) -> None:
        run = ctx.client.get_run(ctx.run_id)
        seen.append((run.info.status, run.data.tags[STEP_TAG], error))

    def fails(ctx: StepContext) -> None:
        raise DataSourceError("data file not found: x.csv")

    def crashes(ctx: StepContext) -> None:
        raise ValueError("bug")

    # a failing hook is one warning: the step's outcome stands and the next hook still runs
    assert _ingest(tmp_path, sample_csv, lambda ctx: None, [broken, record]) == 0
    assert capsys.readouterr().err.strip() == "warning: step hook 'broken' failed: RuntimeError: service down"
    assert _ingest(tmp_path, sample_csv, fails, [broken, record]) == 1
    with pytest.raises(ValueError, match="bug"):
        _ingest(tmp_path, sample_csv, crashes, [broken, record])
    assert seen == [
        ("RUNNING", "ingest", None),
        ("RUNNING", "ingest", "data file not found: x.csv"),
        ("RUNNING", "ingest", "ValueError: bug"),
    ]
    client = MlflowClient()
    experiment = client.get_experiment_by_name("housing-mlops")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED", "FAILED"]
    assert runs[1].data.tags[ERROR_TAG] == "data file not found: x.csv"
