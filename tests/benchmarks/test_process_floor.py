"""The minimal step process the bench times, and the pipeline / floor bound it prints."""

import json
from pathlib import Path

import mlflow
import pytest

from benchmarks import process_floor


def test_the_minimal_step_process_logs_one_run_in_the_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert process_floor.process_seconds(uri) > 0
    (run,) = mlflow.MlflowClient(uri).search_runs(["0"])
    assert (run.info.status, run.data.params) == ("FINISHED", {"step": "minimal"})


def test_the_bound_is_the_cold_time_over_the_cold_time_less_the_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert process_floor.main(["--repeats", "1", "--cold", "240"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["processes"] == 8  # the 7 default steps and the main entry point
    overhead = figures["overhead_at_least_s"]
    assert overhead == pytest.approx(8 * figures["minimal_step_process_s"], abs=0.1)
    assert figures["best_ratio_at_cold"] == pytest.approx(240 / (240 - overhead), abs=1e-3)
    assert figures["cold_needed_for_ratio_1.10_s"] == pytest.approx(11 * overhead, abs=0.6)  # overhead is rounded
