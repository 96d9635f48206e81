"""What a finished study reports: best_params.yaml, trial counts, one line per trial, plots.

Pure: a study in, plain data or matplotlib figures out.
"""

import dataclasses
import logging
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from housing_mlops.config.modeling import ModelConfig
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.ensemble import Ensemble
from housing_mlops.modeling.tuning import FINISHED, PRUNED_ATTR, failure_reason, split_params, tuned_params

log = logging.getLogger(__name__)


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Finished trials per state: {"complete": n, "pruned": n, "fail": n}."""
    return {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in FINISHED}


def grid_score(study: optuna.Study) -> float | None:
    """CV wMAPE of trial 0 (the grid winner, enqueued into the empty study); None if it failed."""
    grid_trial = study.get_trials(deepcopy=False)[0]
    return grid_trial.value if grid_trial.state == TrialState.COMPLETE else None


def sweep_record(
    study: optuna.Study,
    spec: FeatureSpec,
    selection: Mapping[str, Any],
    model: ModelConfig,
    sampler: str,
    folds: int,
    seed: int,
    averaged: Ensemble | None = None,
) -> dict[str, Any]:
    """best_params.yaml: the tuned family, its parameters and features, CV scores, the study.

    With `averaged`, `members` lists the averaged trials and `cv` is the average's score; `params`
    and `features` stay the best trial's.
    """
    best = study.best_trial
    features = split_params(best.params)[1]
    score = grid_score(study)
    if averaged is None:
        cv = {k.removeprefix("cv_"): v for k, v in best.user_attrs.items() if k.startswith("cv_")}
        members = {}
    else:
        cv = averaged.cv
        members = {
            "members": [
                {"trial": n, "params": p, "cv_wmape": round(v, 6)}
                for n, p, v in zip(averaged.trials, averaged.params, averaged.member_cv_wmape, strict=True)
            ]
        }
    return {
        "family": selection["family"],
        "estimator": model.estimator,
        "params": tuned_params(model, selection["params"], best.params),
        "features": features,
        **members,
        "cv": {k: round(v, 6) for k, v in cv.items()},
        "study": {
            "name": study.study_name,
            "best_trial": best.number,
            "trials": trial_counts(study),
            "sampler": sampler,
            "folds": folds,
            "seed": seed,  # of the folds' shuffle (and the sampler)
        },
        # the grid winner on the sweep's own folds (trial 0) is the fair baseline for `cv`;
        # select's score comes from its own, different folds
        "grid_cv_wmape": None if score is None else round(score, 6),
        "select_cv_wmape": selection["cv"]["wmape"],
        "feature_spec": dataclasses.replace(spec, **features).to_dict(),
    }


def trial_line(study: optuna.Study, trial: FrozenTrial) -> str:
    """One line for a finished trial, e.g. `trial 7 COMPLETE: CV wMAPE 0.1234 (9.1 s), best 0.1219 (trial 3)`."""
    if trial.state == TrialState.COMPLETE:
        outcome = f"CV wMAPE {trial.value:.4f}"
    elif trial.state == TrialState.PRUNED:
        outcome = f"pruned {trial.user_attrs.get(PRUNED_ATTR, '')}".rstrip()
    else:
        outcome = failure_reason(trial).splitlines()[0][:200]
    seconds = f" ({trial.duration.total_seconds():.1f} s)" if trial.duration is not None else ""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # the best so far by value, as Optuna picks it (the first one on a tie)
    best = min(complete, key=lambda t: (t.value, t.number)) if complete else None
    so_far = f", best {best.value:.4f} (trial {best.number})" if best is not None else ", no complete trial yet"
    return f"trial {trial.number} {trial.state.name}: {outcome}{seconds}{so_far}"


def log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna callback: `trial_line` as one record (the progress of a non-interactive run).

    A failed trial's record is a warning.
    """
    level = logging.WARNING if trial.state == TrialState.FAIL else logging.INFO
    log.log(level, trial_line(study, trial))


def study_plots(study: optuna.Study) -> dict[str, Figure]:
    """Optuna's plots of the study, keyed by artifact name.

    The optimization history always; with several distinct complete trials, also the parameter
    importances and slice plots.
    """
    from optuna.visualization import matplotlib as ovm

    with warnings.catch_warnings():
        # Optuna marks its matplotlib backend experimental; the figures are artifacts, not an API
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plots: dict[str, Any] = {"optimization_history": ovm.plot_optimization_history(study)}
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) > 1 and len({tuple(sorted(t.params.items())) for t in complete}) > 1:
            plots["param_importances"] = ovm.plot_param_importances(study)
            plots["slice"] = ovm.plot_slice(study)
    # a plot is one Axes or, with several parameters (slice), an array of them on one figure
    return {name: (axes if hasattr(axes, "figure") else axes.flat[0]).figure for name, axes in plots.items()}
