"""The minimal step process the bench times, fresh and forked, and the pipeline / floor bound it prints."""

import contextlib
import json
import os
from pathlib import Path

import mlflow
import pytest

from benchmarks import process_floor
from housing_mlops.pipeline import composed
from housing_mlops.pipeline.step_server import ADDRESS_ENV, StepServer
from tests.conftest import ROOT


def test_the_minimal_step_process_logs_one_run_in_the_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert process_floor.process_seconds(uri) > 0
    (run,) = mlflow.MlflowClient(uri).search_runs(["0"])
    assert (run.info.status, run.data.params) == ("FINISHED", {"step": "minimal"})


def test_the_forked_minimal_step_logs_its_run_from_the_step_server(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process_floor.process_seconds(uri)
    with contextlib.closing(StepServer(ROOT, ["mlflow"])) as server:
        server.start()
        assert server.ready(120)
        assert process_floor.forked_seconds(uri, os.environ[ADDRESS_ENV]) > 0
    runs = mlflow.MlflowClient(uri).search_runs(["0"])
    assert [(r.info.status, r.data.params) for r in runs] == [("FINISHED", {"step": "minimal"})] * 2


def test_config_is_timed_composed_and_as_the_steps_of_a_pipeline_read_it() -> None:
    assert all(seconds > 0 for seconds in process_floor.config_seconds(2))
    assert composed.ENV not in os.environ  # the handed file was the benchmark's own, and is gone


def test_the_bound_is_the_cold_time_over_the_cold_time_less_the_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert process_floor.main(["--repeats", "1", "--cold", "240"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["steps"] == 7  # the default steps, forked; the main entry point is fresh
    overhead = figures["overhead_at_least_s"]
    expected = figures["minimal_step_process_s"] + 7 * figures["forked_step_process_s"]
    assert overhead == pytest.approx(expected, abs=0.1)
    assert figures["best_ratio_at_cold"] == pytest.approx(240 / (240 - overhead), abs=1e-3)
    assert figures["cold_needed_for_ratio_1.10_s"] == pytest.approx(11 * overhead, abs=0.6)  # overhead is rounded
    assert figures["config_compose_s"] > 0
    assert figures["config_handed_s"] > 0
