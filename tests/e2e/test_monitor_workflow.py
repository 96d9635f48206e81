"""The monitor workflow's check step, run here as GitHub runs it: its command (`make monitor`) with its
own `env:` (the batch, the Hydra overrides), against a copy of the session's trained store, with
$GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY pointing at files.

A batch of INLAND districts only, without prices, is `drift`: the verdict is an output (the retrain
job's condition reads it), the job summary names the drifted features, the report is where the
upload step takes it from, and the step itself does not fail.
"""

import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from housing_mlops.config.schema import Config
from housing_mlops.tags import MONITOR_VERDICT_TAG
from tests.conftest import ROOT, Trained
from tests.test_workflows import expand, load, monitor_check_step

pytestmark = pytest.mark.e2e


def test_the_workflow_check_of_an_inland_batch_is_drift_in_its_output_summary_and_report(
    trained: Trained, tmp_path: Path, full_data: pd.DataFrame, cfg: Config
) -> None:
    store = trained.copy(tmp_path / "store")
    batch = tmp_path / "inland.csv"
    inland = full_data[full_data["ocean_proximity"] == "INLAND"].drop(columns=cfg.data.target)
    inland.to_csv(batch, index=False)
    step, runner_temp = monitor_check_step(), tmp_path / "runner-temp"
    values = {"runner.temp": str(runner_temp), "inputs.batch || vars.MONITOR_BATCH": str(batch)}
    step_env = {name: expand(value, values) for name, value in step["env"].items()}
    make, *args = shlex.split(step["run"])
    assert make == "make"
    venv = Path(sys.prefix)
    command = ["make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", *args]
    output, summary = tmp_path / "github-output", tmp_path / "step-summary.md"
    env = store.env | step_env | {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"  # fail_on=never
    assert "[monitor] verdict drift:" in done.stdout + done.stderr
    lines = output.read_text().splitlines()
    assert "verdict=drift" in lines
    # the retrain job's `if:` holds for exactly this output
    retrain_if = next(j for j in load("monitor.yml")["jobs"].values() if "uses" in j)["if"]
    assert "needs.monitor.outputs.verdict == 'drift'" in retrain_if
    (run_id,) = [line.removeprefix("run_id=") for line in lines if line.startswith("run_id=")]
    run = store.client.get_run(run_id)
    assert run.data.tags[MONITOR_VERDICT_TAG] == "drift"
    assert store.client.get_experiment(run.info.experiment_id).name == cfg.monitor.experiment
    psi = {k.removeprefix("psi."): v for k, v in run.data.metrics.items() if k.startswith("psi.")}
    drifted = sorted((n for n in psi if n in cfg.data.features()), key=psi.__getitem__, reverse=True)
    text = summary.read_text()
    assert text.startswith("## ")
    assert "drift" in text.splitlines()[0]
    assert "### Most drifted features" in text
    assert "ocean_proximity" in text
    assert drifted[0] in text  # the largest PSI heads the table
    report_dir = runner_temp / "monitor-report"
    assert (report_dir / "report.html").read_text().startswith("<!doctype html>")
    assert (report_dir / "summary.md").read_text() == text
