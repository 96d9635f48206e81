"""Running the Optuna sweep.

The study in its storage (created or resumed), stale trials failed, the grid winner enqueued
first, trials on one or several forked workers, a crashed worker turned into a SweepError, and the
best_params.yaml record of the result.

No MLflow here: the sweep step passes its MLflow trial logger as a callback, and the benchmark
floor calls `run_sweep` in a bare process (it asserts mlflow was never imported).
"""

import logging
import multiprocessing
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from joblib import Memory
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from housing_mlops.config.modeling import ModelConfig, SweepConfig
from housing_mlops.errors import ConfigError, SweepError
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling import ensemble, study_store, tuning
from housing_mlops.modeling.evaluation import threads_per_worker
from housing_mlops.modeling.sweep_report import log_trial, sweep_record

log = logging.getLogger(__name__)

Callback = Callable[[optuna.Study, FrozenTrial], None]
_OPTUNA_TRIAL_LOG = "optuna.study._optimize"


class _NoFailureWarnings(logging.Filter):
    """Drops Optuna's two warnings (one with a traceback) for a failed trial.

    `log_trial` already gives that trial its one line, with the error, which the trial also keeps
    as a user attribute.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not re.match(r"Trial \d+ failed with ", record.getMessage())


@dataclass(frozen=True)
class SweepOutcome:
    """The finished study (reloaded from its storage) and its best_params.yaml record."""

    study: optuna.Study
    record: dict[str, Any]
    stale: int  # trials a killed earlier sweep left running, failed before this one started
    # the registered model's out-of-fold predictions on X when this run computed them (the average's,
    # or the best trial's when staged on this machine), else None: register then refits the folds
    # for its monitoring reference
    predictions: np.ndarray | None = None


def default_storage(folder: Path) -> str:
    """The SQLite study file in `folder` (beside the tracking store), so a re-run resumes."""
    (folder / "optuna").mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna' / 'studies.db'}"


def run_sweep(
    X: pd.DataFrame,
    y: pd.Series,
    spec: FeatureSpec,
    model: ModelConfig,
    selection: Mapping[str, Any],
    cfg: SweepConfig,
    study_name: str,
    storage_url: str | None,
    cache_dir: str | Path,
    callbacks: Sequence[Callback] = (),
    progress_bar: bool | None = None,
) -> SweepOutcome:
    """Run the study `study_name` to cfg.n_trials finished trials (across resumes) on CV wMAPE.

    `selection` is selection.json (family, params, cv, folds). `storage_url` None keeps the study
    in memory (one worker, nothing to resume). `callbacks` run after every finished trial, in the
    worker that ran it. Trials leave their out-of-fold predictions in `cache_dir`. Optuna's
    progress bar is shown only when `progress_bar` (default: stderr is a terminal); otherwise each
    finished trial logs one line.
    """
    if storage_url is None and cfg.n_workers > 1:
        raise ConfigError(f"config key 'sweep.n_workers' = {cfg.n_workers} needs sweep.storage (workers share it)")
    memory = Memory(str(cache_dir), verbose=0)
    # several workers already fill the cores, and loky pools do not survive their fork (hang)
    fold_jobs = cfg.n_jobs if cfg.n_workers == 1 else 1
    fidelity, max_resource = tuning.fidelity_of(model, cfg)
    predictions_dir = Path(cache_dir) / "predictions" / study_name  # trial numbers are per study
    predictions_dir.mkdir(parents=True, exist_ok=True)
    objective = tuning.cv_objective(
        X,
        y,
        spec,
        model,
        selection["params"],
        cfg.feature_space,
        cfg.folds,
        cfg.seed,
        cfg.pruner,
        memory,
        fold_jobs,
        fidelity,
        predictions_dir,
    )
    bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    per_trial = [*callbacks] if bar else [*callbacks, log_trial]

    in_memory: optuna.Study | None = None
    if storage_url is None:
        in_memory = optuna.create_study(
            direction="minimize",
            sampler=tuning.make_sampler(cfg.sampler, cfg.seed, cfg.n_startup_trials),
            pruner=tuning.make_pruner(cfg.pruner, cfg.n_startup_trials, fidelity, max_resource),
            study_name=study_name,
        )
        study, stale = in_memory, 0
        study.enqueue_trial(tuning.grid_point(model, selection["params"], spec, cfg.feature_space))
    else:
        storage = study_store.open_storage(storage_url, cfg.heartbeat_s)
        # machines starting at once: one creates the study and enqueues the grid winner, once
        with study_store.StudyLock(storage, study_name):
            study = optuna.create_study(
                storage=storage, study_name=study_name, direction="minimize", load_if_exists=True
            )
            study_store.check_direction(study, storage_url)
            stale = _fail_stale(storage, study, storage_url)
            if not study.trials:  # a resumed study already holds the grid winner
                study.enqueue_trial(tuning.grid_point(model, selection["params"], spec, cfg.feature_space))
    remaining = max(cfg.n_trials - tuning.finished_trials(study), 0)
    waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    if storage_url is not None:
        storage.engine.dispose()  # a pooled SQLite connection must not cross a fork
    log.info(
        f"study {study_name}: {len(study.trials)} trials so far ({stale} interrupted), "
        f"{remaining} to run on {cfg.n_workers} worker(s)"
    )

    def worker(index: int, n_trials: int) -> None:
        own_storage = None if storage_url is None else study_store.open_storage(storage_url, cfg.heartbeat_s)
        if own_storage is None:
            assert in_memory is not None
            mine = in_memory
        else:
            sampler = tuning.make_sampler(cfg.sampler, cfg.seed + index, cfg.n_startup_trials)
            pruner = tuning.make_pruner(cfg.pruner, cfg.n_startup_trials, fidelity, max_resource)
            mine = optuna.load_study(study_name=study_name, storage=own_storage, sampler=sampler, pruner=pruner)
        quiet = _NoFailureWarnings()
        if not bar:
            logging.getLogger(_OPTUNA_TRIAL_LOG).addFilter(quiet)
        try:
            with threadpool_limits(threads_per_worker(cfg.n_workers)):
                if own_storage is not None and study_store.shared(str(storage_url)):
                    _claim_trials(mine, own_storage, objective, n_trials, cfg.n_trials, cfg.timeout_s, per_trial)
                    return
                mine.optimize(
                    objective,
                    n_trials=n_trials,
                    timeout=cfg.timeout_s,
                    catch=(Exception,),
                    callbacks=per_trial,
                    show_progress_bar=bar and index == 0,
                )
        finally:
            logging.getLogger(_OPTUNA_TRIAL_LOG).removeFilter(quiet)
            if own_storage is not None:
                own_storage.engine.dispose()

    if cfg.n_workers > 1 and waiting and remaining:
        # enqueued trials run before the fork: two workers can pop the same one from SQLite
        first = min(waiting, remaining)
        worker(0, first)
        remaining -= first
    shares = [n for n in tuning.shares(remaining, cfg.n_workers) if n]
    if len(shares) == 1:
        worker(0, shares[0])
    elif shares:
        _fork(worker, shares, study_name, str(storage_url))

    if in_memory is None:
        final = study_store.open_storage(str(storage_url), cfg.heartbeat_s)
        study = optuna.load_study(study_name=study_name, storage=final)

    def saved(trial: int) -> np.ndarray | None:
        path = tuning.predictions_file(predictions_dir, trial)
        return np.load(path) if path.exists() else None

    averaged = None
    chosen = ensemble.members(study, cfg.ensemble)
    if len(chosen) > 1:
        averaged = ensemble.average(
            chosen, X, y, spec, model, selection["params"], cfg.folds, cfg.seed, cfg.n_jobs, saved
        )
        kept = averaged.cv["wmape"] < study.best_value
        log.info(
            f"trials {averaged.trials} averaged: CV wMAPE {averaged.cv['wmape']:.4f} "
            f"(each alone on the best's features: {', '.join(f'{v:.4f}' for v in averaged.member_cv_wmape)}); "
            + ("registered" if kept else f"not kept: the best trial alone scores {study.best_value:.4f}")
        )
        averaged = averaged if kept else None
    record = sweep_record(study, spec, selection, model, cfg.sampler, cfg.folds, cfg.seed, averaged)
    predictions = saved(study.best_trial.number) if averaged is None else averaged.predictions
    return SweepOutcome(study, record, stale, predictions)


def _fork(worker: Callable[[int, int], None], shares: list[int], study_name: str, storage_url: str) -> None:
    """Run worker(i, share) in one forked process per share; a non-zero exit is a SweepError."""
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
            f"re-running resumes study {study_name} in {study_store.masked(storage_url)}"
        )


def _fail_stale(storage: optuna.storages.RDBStorage, study: optuna.Study, storage_url: str) -> int:
    """Fail the trials a killed sweep left RUNNING; return how many.

    A SQLite study is this machine's: every RUNNING trial is stale when a sweep starts. A shared
    study may have live trials on other machines: only those whose heartbeat stopped are stale.
    """
    if not study_store.shared(storage_url):
        return tuning.fail_stale_trials(storage, study)
    before = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,))) - before


def _claim_trials(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    budget: int,
    timeout_s: float | None,
    callbacks: Sequence[Callback],
) -> None:
    """Run up to `n_trials` trials, one at a time, while the study holds fewer than `budget`.

    Workers on other machines, started independently, share the study: each trial is claimed
    under the study's lock (count every trial, then create one), and the lock is given back as
    soon as the trial exists, so the study ends with exactly `budget` trials, whoever ran them.
    """
    lock = study_store.StudyLock(storage, study.study_name)
    study_id = storage.get_study_id_from_name(study.study_name)

    def claimed(trial: optuna.Trial) -> float:
        lock.release()  # the trial exists: the next claim may count it
        return objective(trial)

    started = time.monotonic()
    for _ in range(n_trials):
        if timeout_s is not None and time.monotonic() - started >= timeout_s:
            return
        with lock:
            if len(storage.get_all_trials(study_id, deepcopy=False)) >= budget:
                return
            study.optimize(claimed, n_trials=1, catch=(Exception,), callbacks=callbacks)
