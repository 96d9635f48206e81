"""The Optuna sweep.

Search space from config, a CV objective that reports each fold for pruning, seeded samplers, and
a study that resumes from its storage.
"""

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from housing_mlops.config.modeling import PRUNERS, ModelConfig, SpaceParam, SweepConfig
from housing_mlops.errors import ConfigError
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling import fidelity as fidelity_cv
from housing_mlops.modeling.evaluation import cross_validate
from housing_mlops.modeling.fidelity import Fidelity
from housing_mlops.modeling.metrics import METRICS
from housing_mlops.modeling.zoo import build_estimator, make_pipeline

FEATURE_PREFIX = "features."
ERROR_ATTR = "error"
PRUNED_ATTR = "pruned"  # where a pruned trial stopped, e.g. "at max_iter=50"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def _bounds(name: str, p: SpaceParam) -> tuple[float, float]:
    """A numeric parameter's [low, high] (config validation already requires both)."""
    if p.low is None or p.high is None:
        raise ConfigError(f"search space parameter '{name}' = {p!r} is not allowed: expected low and high")
    return p.low, p.high


def suggest(trial: optuna.Trial, space: dict[str, SpaceParam], prefix: str = "") -> dict[str, Any]:
    """Draw one value per parameter of `space`; names get `prefix` in the study."""
    values: dict[str, Any] = {}
    with warnings.catch_warnings():
        # The one enqueued trial is the grid winner as it is (grid_point): its features may lie
        # outside the sweep's space (the features step chose K=4 below a space from 5), on purpose.
        warnings.filterwarnings("ignore", "Fixed parameter .* is out of range", UserWarning)
        for name, p in space.items():
            key = f"{prefix}{name}"
            if p.type == "categorical":
                values[name] = trial.suggest_categorical(key, list(p.choices or []))
            elif p.type == "int":
                step = int(p.step) if p.step else 1
                low, high = _bounds(name, p)
                values[name] = trial.suggest_int(key, int(low), int(high), step=step, log=p.log)
            else:
                low, high = _bounds(name, p)
                values[name] = trial.suggest_float(key, float(low), float(high), step=p.step, log=p.log)
    return values


def clip_to_space(values: dict[str, Any], space: dict[str, SpaceParam]) -> dict[str, Any]:
    """The values Optuna can enqueue, brought into the space.

    Numbers are clipped into [low, high] (a default of 0 on a log scale becomes `low`); categories
    are kept only when they are among the choices.
    """
    clipped: dict[str, Any] = {}
    for name, value in values.items():
        p = space[name]
        if p.type == "categorical":
            if value in (p.choices or []):
                clipped[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            low, high = _bounds(name, p)
            bounded = min(max(value, low), high)
            clipped[name] = round(bounded) if p.type == "int" else float(bounded)
    return clipped


def make_sampler(kind: str, seed: int, n_startup_trials: int) -> optuna.samplers.BaseSampler:
    """The seeded sampler of sweep.sampler."""
    if kind == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, multivariate=True, n_startup_trials=n_startup_trials, constant_liar=True
        )
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ConfigError(f"config key 'sweep.sampler' = {kind!r} is not allowed: expected tpe | random")


def make_pruner(
    kind: str, n_startup_trials: int, fidelity: Fidelity | None = None, max_resource: int | None = None
) -> optuna.pruners.BasePruner:
    """The pruner of sweep.pruner.

    The rung pruners compare trials at the same boosting rounds (`fidelity`, up to `max_resource`,
    the space's largest value); without a fidelity their resource is the fold, one per rung.
    """
    min_resource, factor = (fidelity.min_resource, fidelity.reduction_factor) if fidelity else (1, 2)
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=factor)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max_resource or "auto", reduction_factor=factor
        )
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0)
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"config key 'sweep.pruner' = {kind!r} is not allowed: expected {' | '.join(PRUNERS)}")


def fidelity_of(model: ModelConfig, cfg: SweepConfig) -> tuple[Fidelity | None, int | None]:
    """The family's fidelity with sweep.fidelity's rungs, and the largest resource a trial can reach."""
    if model.fidelity is None:
        return None, None
    largest = model.largest(model.fidelity)
    fidelity = Fidelity(model.fidelity, cfg.fidelity.min_resource, cfg.fidelity.reduction_factor)
    return fidelity, None if largest is None else int(largest)


def rung_reporter(trial: optuna.Trial, param: str, final: int) -> fidelity_cv.OnRung:
    """Report the mean over folds after each rung (step = the resource reached) and prune a poor trial.

    A trial that reached its own `final` value is complete: pruning it then would save nothing.
    """

    def on_rung(step: int, rows: list[dict[str, float]]) -> None:
        value = sum(r["wmape"] for r in rows) / len(rows)
        trial.report(value, step=step)
        for i, scores in enumerate(rows):
            trial.set_user_attr(f"fold_{i}_wmape", scores["wmape"])
        if step < final and trial.should_prune():
            trial.set_user_attr(PRUNED_ATTR, f"at {param}={step}")
            raise optuna.TrialPruned(f"pruned at {param}={step}: CV wMAPE {value:.4f}")

    return on_rung


def fold_reporter(trial: optuna.Trial, pruner_kind: str) -> Callable[[int, dict[str, float]], None]:
    """Report after each CV fold and prune hopeless trials.

    The median pruner compares running means; the Wilcoxon pruner compares per-fold values
    (its steps are fold indices, and it expects the value of that fold, not a running mean).
    """
    seen: list[float] = []

    def on_fold(i: int, scores: dict[str, float]) -> None:
        seen.append(scores["wmape"])
        value = scores["wmape"] if pruner_kind == "wilcoxon" else sum(seen) / len(seen)
        trial.report(value, step=i)
        trial.set_user_attr(f"fold_{i}_wmape", scores["wmape"])
        if trial.should_prune():
            trial.set_user_attr(PRUNED_ATTR, f"after fold {i}")
            raise optuna.TrialPruned(f"pruned after fold {i}: running wMAPE {value:.4f}")

    return on_fold


def cv_objective(
    X: pd.DataFrame,
    y: pd.Series,
    spec: FeatureSpec,
    model: ModelConfig,
    base_params: dict[str, Any],
    feature_space: dict[str, SpaceParam],
    n_folds: int,
    seed: int,
    pruner_kind: str,
    memory: Any = None,
    n_jobs: int = 1,
    fidelity: Fidelity | None = None,
    predictions_dir: Path | None = None,
) -> Callable[[optuna.Trial], float]:
    """The study's objective: mean CV wMAPE of the full Pipeline with the trial's parameters.

    The trial's model and feature parameters go on `base_params` (the grid winner's). With a
    `fidelity` the estimator can grow (and a pruner other than Wilcoxon, which needs per-fold
    values), the folds grow together through the rungs and each rung is reported; otherwise folds
    run `n_jobs` at a time and each is reported after its round. The mean of every metric is kept
    as a `cv_<metric>` user attribute. A complete staged trial leaves its out-of-fold predictions
    in `predictions_dir` (`predictions_file`): register's monitoring reference needs the best one's.
    """
    cache = fidelity_cv.PrefixCache()

    def objective(trial: optuna.Trial) -> float:
        params = {**base_params, **suggest(trial, model.space)}
        features = suggest(trial, feature_space, FEATURE_PREFIX)
        try:
            estimator = build_estimator(model, params)
            if fidelity is not None and pruner_kind != "wilcoxon" and fidelity_cv.supports(estimator, fidelity):
                pipeline = make_pipeline(dataclasses.replace(spec, **features), estimator)
                on_rung = rung_reporter(trial, fidelity.param, estimator.get_params()[fidelity.param])
                folds, predictions = fidelity_cv.staged_cross_validate(
                    pipeline, X, y, n_folds, seed, fidelity, on_rung, cache, n_jobs
                )
                if predictions_dir is not None:
                    np.save(predictions_file(predictions_dir, trial.number), predictions)
            else:
                pipeline = make_pipeline(dataclasses.replace(spec, **features), estimator, memory)
                on_fold = fold_reporter(trial, pruner_kind)
                folds = cross_validate(pipeline, X, y, n_folds, seed, n_jobs=n_jobs, on_fold=on_fold)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            # Optuna logs a caught exception but keeps no reason on the trial: keep it for the record
            trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        for metric in METRICS:
            trial.set_user_attr(f"cv_{metric}", float(folds[metric].mean()))
        return float(folds["wmape"].mean())

    return objective


def predictions_file(folder: Path, trial: int) -> Path:
    """Where trial `trial` of a sweep keeps its out-of-fold predictions (a .npy file)."""
    return folder / f"trial-{trial}.npy"


def failure_reason(trial: optuna.trial.FrozenTrial) -> str:
    """Why a FAIL trial failed: the exception it raised, or the reason a resume recorded."""
    return str(trial.user_attrs.get(ERROR_ATTR) or trial.system_attrs.get("fail_reason", "unknown"))


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards sweep.n_trials: complete, pruned or failed."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def fail_stale_trials(storage: optuna.storages.BaseStorage, study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed sweep as FAIL, so a resumed study counts right.

    Only safe when no other worker is using the storage, which is the case when a sweep starts.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        # the reason first: a finished trial can no longer be updated
        storage.set_trial_system_attr(trial_id, "fail_reason", "left running by an interrupted sweep")
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    return len(stale)


def shares(total: int, workers: int) -> list[int]:
    """Split `total` trials over workers so that they add up exactly."""
    return [total // workers + (i < total % workers) for i in range(workers)]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial; `value` only for complete trials.

    Optuna keeps a pruned trial's last running mean in `value`, which is not a CV score.
    """
    frame = study.trials_dataframe(attrs=("number", "value", "state", "duration", "params", "user_attrs"))
    frame["value"] = frame["value"].where(frame["state"] == TrialState.COMPLETE.name)
    return frame.sort_values("number").reset_index(drop=True)


def grid_point(
    model: ModelConfig, params: Mapping[str, Any], spec: FeatureSpec, feature_space: Mapping[str, SpaceParam]
) -> dict[str, Any]:
    """The study's first trial: the grid winner exactly, with the spec's feature values.

    The grid winner's values are its grid values, else the family's fixed or default values,
    clipped into the space.
    """
    winner = build_estimator(model, dict(params)).get_params()
    point = clip_to_space({k: winner[k] for k in model.space if k in winner}, model.space)
    return point | {f"{FEATURE_PREFIX}{k}": getattr(spec, k) for k in feature_space}


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's parameters as (model parameters, FeatureSpec fields without the prefix)."""
    model = {k: v for k, v in params.items() if not k.startswith(FEATURE_PREFIX)}
    features = {k.removeprefix(FEATURE_PREFIX): v for k, v in params.items() if k.startswith(FEATURE_PREFIX)}
    return model, features


def tuned_params(model: ModelConfig, base_params: Mapping[str, Any], trial_params: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator's parameters of a trial: fixed, then the grid winner's, then the trial's."""
    return {**model.fixed, **base_params, **split_params(trial_params)[0]}
