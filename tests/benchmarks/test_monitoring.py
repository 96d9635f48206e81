"""The bench's `monitor` part: its figures and report rows from a real calibration (the small model of
tests/monitoring), and the part itself on a copy of the session's trained store."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
from benchmarks.bench import parse_args
from benchmarks.monitoring import calibration_figures, monitoring
from benchmarks.report import GOALS, monitor_rows, monitor_table, render
from benchmarks.settings import Settings

from housing_mlops.config.schema import Config
from housing_mlops.monitoring.calibration import calibrate
from tests.conftest import MODEL, Trained
from tests.monitoring.conftest import Fitted, fitted  # noqa: F401 (the session's small model, as a fixture)

SHIFTS = [
    "only ocean_proximity = INLAND",
    "median_income x 1.3",
    "30% of total_bedrooms missing",
    "longitude+latitude + 1.0",
    "median_house_value x 1.25 (labelled)",
]


def test_figures_and_report_rows_of_a_calibration(cfg: Config, fitted: Fitted) -> None:  # noqa: F811
    few = dataclasses.replace(cfg.monitor, calibration=dataclasses.replace(cfg.monitor.calibration, resamples=4))
    calibration = calibrate(fitted.reference, fitted.test, fitted.predict, few)
    figures = calibration_figures(calibration, len(fitted.test), 1.234)
    assert json.loads(json.dumps(figures)) == figures  # goes into the results JSON as it is
    assert figures["resamples"] == {"ok": 4, "drift": 0, "degraded": 0}
    assert (figures["test_rows"], figures["seconds"]) == (len(fitted.test), 1.23)
    assert list(figures["shifts"]) == SHIFTS
    inland = figures["shifts"]["only ocean_proximity = INLAND"]
    assert inland["rows"] == int((fitted.test["ocean_proximity"] == "INLAND").sum())
    assert "ocean_proximity" in inland["drifted"]
    assert all(s["as_expected"] for s in figures["shifts"].values())

    result = figures | {"model": "m v1", "load_avg_1m": [1.0, 1.5]}
    rows = monitor_rows(result)
    assert rows[0] == ["monitor: resamples of the sealed test set (4,128 rows) called drift", "0 of 4", "≤ 2", "yes"]
    assert [r[1:] for r in rows[1:-1]] == [[s["verdict"], s["expected"], "yes"] for s in figures["shifts"].values()]
    assert rows[-1] == ["monitor: calibration time (1 thread)", "1.2 s", "", ""]
    table = "\n".join(monitor_table(result))
    assert f"ocean_proximity {inland['drifted']['ocean_proximity']:.2f}" in table
    assert "load average 1 min over the part: 1.00 → 1.50" in table


def test_a_missed_shift_and_false_drift_fail_their_goals() -> None:
    shift = {"verdict": "ok", "expected": "drift", "as_expected": False, "rows": 300, "drifted": {}}
    result = {
        "test_rows": 400,
        "resamples": {"ok": 45, "drift": GOALS["monitor_resample_drift"] + 1, "degraded": 2},
        "shifts": {"median_income x 1.3": shift | {"prediction_psi": 0.01, "wmape_low": None}},
        "seconds": 2.0,
        "model": "m v1",
        "load_avg_1m": [1.0, 1.0],
    }
    rows = monitor_rows(result)
    assert rows[0][1:] == ["3 of 50 (degraded 2)", "≤ 2", "**no**"]
    assert rows[1] == ["monitor: median_income x 1.3", "ok", "drift", "**no**"]
    assert "| median_income x 1.3 |" in "\n".join(monitor_table(result)).replace("  ", " ")


def test_the_part_on_the_trained_store_calibrates_its_champion(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    machine = {"cpu_model": "CPU", "cores": 2, "memory_gb": 8.0, "python": "3.11", "git_sha": "abc", "git_dirty": False}
    machine |= {"libraries": {"mlflow": "3", "scikit-learn": "1", "optuna": "5"}, "quick": True}
    # the sample's test set has 400 rows, about 130 of them INLAND: below the default monitor.min_rows
    hydra = "profile=smoke monitor.calibration.resamples=3 monitor.min_rows=100"
    folder = Path(store.uri.removeprefix("sqlite:///")).parent
    data = Path(store.env["HOUSING_DATA_SOURCE"])
    settings = Settings(True, ("monitor",), data, hydra, tmp_path / "out", tmp_path, folder, "bench", machine=machine)

    result = monitoring(settings)

    assert result["model"] == f"{MODEL} v1"
    assert result["test_rows"] == 400  # the sealed test set of the 2,000-row sample
    assert sum(result["resamples"].values()) == 3
    assert list(result["shifts"]) == SHIFTS
    test = pd.read_parquet(tmp_path / "monitor" / "test.parquet")
    assert result["shifts"]["only ocean_proximity = INLAND"]["rows"] == int((test["ocean_proximity"] == "INLAND").sum())
    moved = result["shifts"]["longitude+latitude + 1.0"]
    assert (moved["verdict"], moved["as_expected"]) == ("drift", True)
    assert {"longitude", "latitude"} <= set(moved["drifted"])
    assert result["seconds"] > 0
    assert len(result["load_avg_1m"]) == 2
    results = {"date": "d", "command": "bench", "machine": machine, "data": {"rows": 2000}, "monitor": result}
    assert "Monitor calibration, housing_price_model v1." in render(results, "")


def test_monitor_is_a_part_of_the_bench_before_the_sweep() -> None:
    assert parse_args(["--only", "sweep,monitor"]).parts == ("monitor", "sweep")
