"""Step `sweep`: Optuna study of the winning family on CV wMAPE -> best_params.yaml."""

import dataclasses
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import yaml
from joblib import Memory
from mlflow.entities import Metric, Param
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from housing_mlops.errors import SweepError
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.integrations import wandb_mirror as mirror
from housing_mlops.modeling import tuning
from housing_mlops.modeling.zoo import build_estimator
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.pipeline.tracking import local_store_dir
from housing_mlops.tags import ERROR_TAG, TRIAL_STATE_TAG, TRIAL_TAG

log = logging.getLogger(__name__)

_RUN_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAIL: "FAILED",
}


def sweep(ctx: StepContext) -> None:
    data, cfg = ctx.cfg.data, ctx.cfg.sweep
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    spec = FeatureSpec.from_dict(json.loads(ctx.input("features", "feature_spec.json").read_text()))
    selection = json.loads(ctx.input("select", "selection.json").read_text())
    model = ctx.cfg.models.zoo[selection["family"]]
    X, y = train[data.features()], train[data.target]
    memory = Memory(tempfile.mkdtemp(dir=ctx.workdir), verbose=0)
    # several workers already fill the cores, and loky pools do not survive their fork (hang)
    fold_jobs = cfg.n_jobs if cfg.n_workers == 1 else 1
    objective = tuning.cv_objective(
        X, y, spec, model, selection["params"], cfg.feature_space, cfg.folds, cfg.seed, cfg.pruner, memory, fold_jobs
    )

    storage_url = cfg.storage or _default_storage(ctx)
    study_name = cfg.study_name or f"sweep-{ctx.key[:16]}"
    storage = tuning.open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", load_if_exists=True)
    stale = tuning.fail_stale_trials(storage, study)
    if not study.trials:  # a resumed study already holds the grid winner
        # the grid winner exactly: its grid values, else the family's fixed or default values
        winner = build_estimator(model, selection["params"]).get_params()
        grid_point = tuning.clip_to_space({k: winner[k] for k in model.space if k in winner}, model.space)
        grid_point |= {f"{tuning.FEATURE_PREFIX}{k}": getattr(spec, k) for k in cfg.feature_space}
        study.enqueue_trial(grid_point)
    remaining = max(cfg.n_trials - tuning.finished_trials(study), 0)
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    storage.engine.dispose()  # a pooled SQLite connection must not cross a fork
    log.info(
        f"study {study_name}: {len(study.trials)} trials so far ({stale} interrupted), "
        f"{remaining} to run on {cfg.n_workers} worker(s)"
    )

    def worker(index: int, n_trials: int) -> None:
        sampler = tuning.make_sampler(cfg.sampler, cfg.seed + index, cfg.n_startup_trials)
        pruner = tuning.make_pruner(cfg.pruner, cfg.n_startup_trials)
        mine_storage = tuning.open_storage(storage_url)
        mine = optuna.load_study(study_name=study_name, storage=mine_storage, sampler=sampler, pruner=pruner)
        with threadpool_limits(tuning.threads_per_worker(cfg.n_workers)):
            mine.optimize(
                objective,
                n_trials=n_trials,
                timeout=cfg.timeout_s,
                catch=(Exception,),
                callbacks=[_trial_logger(ctx)],
                show_progress_bar=index == 0,
            )
        mine_storage.engine.dispose()

    if cfg.n_workers > 1 and waiting and remaining:
        # enqueued trials run before the fork: two workers can pop the same one from SQLite
        first = min(waiting, remaining)
        worker(0, first)
        remaining -= first
    shares = [n for n in tuning.shares(remaining, cfg.n_workers) if n]
    if len(shares) == 1:
        worker(0, shares[0])
    elif shares:
        context = multiprocessing.get_context("fork")
        processes = [context.Process(target=worker, args=(i, n)) for i, n in enumerate(shares)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        crashed = {i: p.exitcode for i, p in enumerate(processes) if p.exitcode != 0}
        if crashed:
            raise SweepError(
                f"sweep worker(s) {crashed} (index: exit code) crashed, see the traceback above; "
                f"re-running resumes study {study_name} in {storage_url}"
            )

    study = optuna.load_study(study_name=study_name, storage=tuning.open_storage(storage_url))
    _log_results(ctx, study, spec, selection, model, storage_url)
    mirror.mirror_trials(ctx, study)  # W&B copy of every finished trial (no-op when wandb=disabled)


def _default_storage(ctx: StepContext) -> str:
    folder = local_store_dir(ctx.root) / "optuna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


def _trial_logger(ctx: StepContext):
    """Log each finished trial as a nested MLflow run (works from any worker process)."""

    def log(study: optuna.Study, trial: FrozenTrial) -> None:
        client = mlflow.MlflowClient()
        start = int(trial.datetime_start.timestamp() * 1000) if trial.datetime_start else None
        run = client.create_run(
            ctx.experiment_id,
            start_time=start,
            run_name=f"trial-{trial.number:03d}",
            tags={
                "mlflow.parentRunId": ctx.run_id,
                TRIAL_TAG: str(trial.number),
                TRIAL_STATE_TAG: trial.state.name,
            }
            | ({ERROR_TAG: tuning.failure_reason(trial)[:5000]} if trial.state == TrialState.FAIL else {}),
        )
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        metrics = {k: float(v) for k, v in trial.user_attrs.items() if k != tuning.ERROR_ATTR}
        if trial.duration is not None:
            metrics["duration_s"] = trial.duration.total_seconds()
        client.log_batch(  # one request per trial, not one per value
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in trial.params.items()],
        )
        end = int(trial.datetime_complete.timestamp() * 1000) if trial.datetime_complete else None
        client.set_terminated(run_id, _RUN_STATUS.get(trial.state, "FAILED"), end_time=end)

    return log


def _log_results(ctx, study, spec, selection, model, storage_url) -> None:
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in tuning.FINISHED}
    best = study.best_trial
    features = {
        k.removeprefix(tuning.FEATURE_PREFIX): v for k, v in best.params.items() if k.startswith(tuning.FEATURE_PREFIX)
    }
    model_params = {
        **model.fixed,
        **selection["params"],
        **{k: v for k, v in best.params.items() if not k.startswith(tuning.FEATURE_PREFIX)},
    }
    best_spec = dataclasses.replace(spec, **features)
    grid_trial = study.get_trials(deepcopy=False)[0]  # enqueued into the empty study: the grid winner
    grid_score = grid_trial.value if grid_trial.state == TrialState.COMPLETE else None
    result = {
        "family": selection["family"],
        "estimator": model.estimator,
        "params": model_params,
        "features": features,
        "cv": {k.removeprefix("cv_"): round(v, 6) for k, v in best.user_attrs.items() if k.startswith("cv_")},
        "study": {
            "name": study.study_name,
            "best_trial": best.number,
            "trials": counts,
            "sampler": ctx.cfg.sweep.sampler,
            "folds": ctx.cfg.sweep.folds,
        },
        # the grid winner on the sweep's own folds (trial 0) is the fair baseline for `cv`;
        # select's score comes from its own, different folds
        "grid_cv_wmape": None if grid_score is None else round(grid_score, 6),
        "select_cv_wmape": selection["cv"]["wmape"],
        "feature_spec": best_spec.to_dict(),
    }
    ctx.output("best_params.yaml", lambda p: p.write_text(yaml.safe_dump(result, sort_keys=False)))
    frame = tuning.trials_frame(study)
    mlflow.log_text(frame.to_csv(index=False), "trials.csv")
    for name, plot in _plots(study).items():
        mlflow.log_figure(plot.figure, f"{name}.png")
    if storage_url.startswith("sqlite:///"):
        mlflow.log_artifact(storage_url.removeprefix("sqlite:///"), "optuna")
    mlflow.log_params(
        {
            "family": selection["family"],
            "study_name": study.study_name,
            **{f"best.{k}": v for k, v in best.params.items()},
        }
    )
    mlflow.log_metrics(
        {
            "best_cv_wmape": best.value,
            "best_trial": best.number,
            **{f"trials_{k}": v for k, v in counts.items()},
            **({"grid_cv_wmape": grid_score} if grid_score is not None else {}),
        }
    )
    grid = f"{grid_score:.4f}" if grid_score is not None else "failed"
    log.info(
        f"best trial {best.number}: CV wMAPE {best.value:.4f}; grid winner (trial 0) on the same "
        f"{ctx.cfg.sweep.folds} folds {grid}, in select ({selection['folds']} folds) "
        f"{selection['cv']['wmape']:.4f}; trials {counts}"
    )


def _plots(study: optuna.Study) -> dict:
    from optuna.visualization import matplotlib as ovm

    plots = {"optimization_history": ovm.plot_optimization_history(study)}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) > 1 and len({tuple(sorted(t.params.items())) for t in complete}) > 1:
        plots["param_importances"] = ovm.plot_param_importances(study)
        plots["slice"] = ovm.plot_slice(study)
    return {name: axes if hasattr(axes, "figure") else axes.flat[0] for name, axes in plots.items()}


if __name__ == "__main__":
    sys.exit(run_step("sweep", sweep, Path(__file__).resolve().parents[1]))
