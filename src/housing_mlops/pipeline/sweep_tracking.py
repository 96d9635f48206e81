"""The sweep in MLflow.

One nested run per finished trial, and the study's table, plots, storage file, params and metrics
on the sweep step's run.
"""

import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import optuna
from mlflow.entities import Metric, Param
from optuna.trial import FrozenTrial, TrialState

from housing_mlops.modeling import study_store, tuning
from housing_mlops.modeling.sweep_report import grid_score, study_plots
from housing_mlops.tags import ERROR_TAG, TRIAL_PRUNED_TAG, TRIAL_REPORTED_METRIC, TRIAL_STATE_TAG, TRIAL_TAG

log = logging.getLogger(__name__)

RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


def trial_logger(experiment_id: str, parent_run_id: str) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Optuna callback: each finished trial as a nested MLflow run of `parent_run_id`.

    Works from any worker process: it opens its own client, no active run needed.
    """

    def log_trial_run(study: optuna.Study, trial: FrozenTrial) -> None:
        client = mlflow.MlflowClient()
        start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else None
        run = client.create_run(
            experiment_id,
            start_time=start,
            run_name=f"trial-{trial.number:03d}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                TRIAL_TAG: str(trial.number),
                TRIAL_STATE_TAG: trial.state.name,
            }
            | ({ERROR_TAG: tuning.failure_reason(trial)[:5000]} if trial.state == TrialState.FAIL else {})
            | (
                {TRIAL_PRUNED_TAG: str(trial.user_attrs[tuning.PRUNED_ATTR])}
                if tuning.PRUNED_ATTR in trial.user_attrs
                else {}
            ),
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        text = (tuning.ERROR_ATTR, tuning.PRUNED_ATTR)
        metrics = {k: float(v) for k, v in trial.user_attrs.items() if k not in text}
        if trial.duration is not None:
            metrics["duration_s"] = trial.duration.total_seconds()
        # what the pruner saw, step by step (a rung's boosting rounds, or a fold): a curve in the UI
        reported = [
            Metric(TRIAL_REPORTED_METRIC, v, now, int(step)) for step, v in sorted(trial.intermediate_values.items())
        ]
        client.log_batch(  # one request per trial, not one per value
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()] + reported,
            params=[Param(k, str(v)) for k, v in trial.params.items()],
        )
        end = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else None
        client.set_terminated(run_id, RUN_STATUS.get(trial.state, "FAILED"), end_time=end)

    return log_trial_run


def log_study(study: optuna.Study, record: dict[str, Any], storage_url: str) -> None:
    """Log the study on the active (sweep step) run.

    trials.csv, Optuna's plots, the SQLite study file, the best trial's params, and the best score,
    trial counts and grid winner's score as metrics.
    """
    mlflow.log_text(tuning.trials_frame(study).to_csv(index=False), "trials.csv")
    for name, figure in study_plots(study).items():
        mlflow.log_figure(figure, f"{name}.png")
    if not study_store.shared(storage_url):
        with tempfile.TemporaryDirectory() as folder:
            study_file = study_store.snapshot(storage_url, Path(folder) / Path(storage_url).name)
            mlflow.log_artifact(str(study_file), "optuna")
    best = study.best_trial
    mlflow.log_params(
        {
            "family": record["family"],
            "study_name": study.study_name,
            **{f"best.{k}": v for k, v in best.params.items()},
        }
    )
    grid = grid_score(study)  # unrounded, unlike the record's
    mlflow.log_metrics(
        {
            "best_cv_wmape": study.best_value,
            "best_trial": best.number,
            **{f"trials_{k}": v for k, v in record["study"]["trials"].items()},
            **({"grid_cv_wmape": grid} if grid is not None else {}),
            # the registered model's: the best trial's, or the average of `members`
            "cv_wmape": record["cv"]["wmape"],
            "members": len(record.get("members", [best])),
        }
    )
