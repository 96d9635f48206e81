"""The timed pipeline runs: the command they launch and the figures they read from a pipeline record."""

from pathlib import Path

from benchmarks.pipelines import cold_result, pipeline_command, register_cost, steps_that_ran, trials_finished
from benchmarks.settings import BIN, ROOT, Settings


def settings(tmp_path: Path, hydra: str = "") -> Settings:
    return Settings(
        quick=True,
        parts=("cold",),
        data=tmp_path / "housing.csv",
        hydra=hydra,
        out=tmp_path / "out",
        work=tmp_path,
        store=tmp_path / "store",
        command="python -m benchmarks.bench",
    )


RECORD = {
    "steps": [
        {"step": "ingest", "status": "ran", "duration_s": 5.0, "run_s": 4.5, "metrics": {}},
        {
            "step": "sweep",
            "status": "cached",
            "duration_s": 20.0,
            "run_s": 19.0,
            "metrics": {
                "trials_complete": 3.0,
                "trials_pruned": 2.0,
                "trials_fail": 1.0,
                "best_cv_wmape": 0.2,
                "grid_cv_wmape": 0.25,
                "cv_wmape": 0.19,
                "members": 3.0,
            },
        },
        {
            "step": "register",
            "status": "ran",
            "duration_s": 10.0,
            "run_s": 9.0,
            "metrics": {"test_wmape": 0.21, "test_rmse": 40_000.0},
        },
    ]
}


def test_pipeline_command_is_make_pipeline_with_every_step(tmp_path: Path) -> None:
    command = pipeline_command(settings(tmp_path, "sweep.n_trials=4 features.k_min=4"))
    assert command == [
        str(BIN / "mlflow"),
        "run",
        str(ROOT),
        "--env-manager",
        "local",
        "-P",
        "steps=",
        "-P",
        "hydra_options=sweep.n_trials=4 features.k_min=4",
    ]


def test_settings_point_the_pipeline_at_the_bench_store_and_data(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert s.env["MLFLOW_TRACKING_URI"] == s.tracking_uri
    assert s.env["HOUSING_DATA_SOURCE"] == str(tmp_path / "housing.csv")
    assert s.env["WANDB_MODE"] == "disabled"
    assert not any(k.startswith(("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT")) for k in s.env)
    assert s.has_store is False
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "mlflow.db").touch()
    assert s.has_store is True


def test_trials_finished_counts_complete_pruned_and_failed() -> None:
    assert trials_finished({"trials_complete": 3.0, "trials_pruned": 2.0, "trials_fail": 1.0, "other": 9.0}) == 6
    assert trials_finished({"trials_complete": 4.0}) == 4
    assert trials_finished({}) == 0


def test_steps_that_ran_leaves_out_cache_hits() -> None:
    assert steps_that_ran(RECORD) == ["ingest", "register"]


def test_cold_result_reads_steps_sweep_and_test_figures() -> None:
    result = cold_result(40.123, RECORD)
    assert result == {
        "wall_s": 40.12,
        "steps": [
            {"step": "ingest", "status": "ran", "wall_s": 5.0, "run_s": 4.5},
            {"step": "sweep", "status": "cached", "wall_s": 20.0, "run_s": 19.0},
            {"step": "register", "status": "ran", "wall_s": 10.0, "run_s": 9.0},
        ],
        "outside_steps_s": 5.12,
        "sweep_trials_finished": 6,
        "sweep_best_cv_wmape": 0.2,
        "sweep_cv_wmape": 0.19,
        "sweep_members": 3.0,
        "sweep_grid_cv_wmape": 0.25,
        "test_wmape": 0.21,
        "test_rmse": 40_000.0,
        "register": {"wall_s": 10.0, "run_s": 9.0, "compile_s": None, "profile_s": None, "reference_s": None},
    }


def test_register_cost_splits_conversion_and_profiling_when_the_step_logged_them() -> None:
    metrics = {"register_compile_s": 4.123, "register_profile_s": 7.456, "register_reference_s": 2.5, "test_wmape": 0.2}
    assert register_cost(None, 12.345, metrics) == {
        "wall_s": None,
        "run_s": 12.35,
        "compile_s": 4.12,
        "profile_s": 7.46,
        "reference_s": 2.5,
    }


def test_cold_result_without_sweep_or_register_metrics() -> None:
    record = {"steps": [{"step": "ingest", "status": "ran", "duration_s": 1.0, "run_s": 1.0, "metrics": {}}]}
    result = cold_result(2.0, record)
    assert result["sweep_trials_finished"] == 0
    assert result["sweep_best_cv_wmape"] is None
    assert result["test_wmape"] is None
    assert result["register"] is None
