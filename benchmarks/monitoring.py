"""The `monitor` part: the monitor's thresholds on batches whose answer is known (issue 16, item 6).

On the champion of the bench's store and the sealed test set it was scored on (the split run's
test.parquet), monitoring.calibration.calibrate runs the monitor on monitor.calibration.resamples
random resamples of the labelled test rows (each should say `ok`), on each shift of config
monitor.calibration without labels (each should say `drift`) and on the test rows with prices
scaled (`degraded`). The model is the champion as `make monitor` loads it (`mlflow.pyfunc`, the
variant it serves), native thread pools pinned to one thread; the time covers the whole calibration.
"""

import time
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.machine import figure
from benchmarks.pipelines import ensure_store
from benchmarks.serving import load_avg, sealed_test
from benchmarks.settings import Settings
from housing_mlops.monitoring.calibration import Calibration


def calibration_figures(calibration: Calibration, rows: int, seconds: float) -> dict[str, Any]:
    """The part's result: resample verdict counts, per shift its verdict, the expected one, rows and drift."""
    plain = calibration.to_dict()
    for name, shift in plain["shifts"].items():
        shift["rows"] = calibration.shifts[name].drift.rows
        shift["as_expected"] = shift["verdict"] == shift["expected"]
    return {
        "test_rows": rows,
        "resamples": plain["resamples"],
        "shifts": plain["shifts"],
        "seconds": round(seconds, 2),
    }


def monitoring(settings: Settings) -> dict[str, Any]:
    """Calibrate the monitor on the bench store's champion and its sealed test set."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from threadpoolctl import threadpool_limits

    from housing_mlops.monitoring.calibration import calibrate
    from housing_mlops.pipeline.monitor import champion_version, reference_of

    ensure_store(settings)
    cfg = settings.cfg()
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    version = champion_version(client, cfg.registry.model_name)
    work = settings.work / "monitor"
    work.mkdir(parents=True, exist_ok=True)
    reference = reference_of(client, version, work)
    test = sealed_test(client, cfg, version.version, work)
    model = mlflow.pyfunc.load_model(f"models:/{version.name}/{version.version}")

    def predict(X: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(X), dtype=np.float64).ravel()

    before = load_avg()
    started = time.perf_counter()
    with threadpool_limits(1):
        calibration = calibrate(reference, test, predict, cfg.monitor)
    result = calibration_figures(calibration, len(test), time.perf_counter() - started)
    counts = ", ".join(f"{k} {v}" for k, v in result["resamples"].items())
    figure(settings, f"monitor: {cfg.monitor.calibration.resamples} resamples of the test set", counts)
    for name, shift in result["shifts"].items():
        figure(settings, f"monitor: {name}", f"{shift['verdict']} (expected {shift['expected']})")
    figure(settings, "monitor: calibration time", f"{result['seconds']:.1f} s")
    return result | {"model": f"{version.name} v{version.version}", "load_avg_1m": [before, load_avg()]}
