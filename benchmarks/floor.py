"""The compute floor: the pipeline's fits done by one bare process.

The same library calls the steps make, in the same order and with the same config (folds,
seeds, n_jobs, sampler, pruner, trial count), but no MLflow, no Hydra app, no subprocesses
and no artifacts: what is left is the work the pipeline cannot avoid. `bench.py` divides
the pipeline's wall time by this script's to get the orchestration overhead.

    python -m benchmarks.floor --data housing.csv --json floor.json [--trials N] [--hydra-options "..."]

Where a step's body has no library function to call, the few lines it needs are repeated
here (marked "as steps/<step>.py"); keep them in step with the steps.
"""

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from joblib import Memory, parallel_config
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config
from housing_mlops.data import schema
from housing_mlops.data.split import split, strata
from housing_mlops.features.clusters import silhouette_scan
from housing_mlops.features.imputation import pick_winner, score_strategies
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec, feature_spec_for
from housing_mlops.modeling import tuning
from housing_mlops.modeling.evaluation import cross_validate, segment_wmape
from housing_mlops.modeling.metrics import evaluate
from housing_mlops.modeling.selection import CandidateResult, evaluate_grid, leaderboard, winner
from housing_mlops.modeling.zoo import build_estimator, estimator_from, make_pipeline
from housing_mlops.registry import hardware

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)
        print(f"[floor] {name}: {timings[name]:.1f} s", flush=True)


def ingest(cfg: Config, data_path: Path) -> pd.DataFrame:
    """Read and validate the CSV as the ingest step does (the parquet hand-over is MLflow's part)."""
    frame, _ = schema.validate(schema.read_csv(data_path), cfg.data, data_path.name)
    return frame


def load_train(cfg: Config, data_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) exactly as the split step makes them."""
    return split(ingest(cfg, data_path), cfg.data, cfg.split)


def impute(cfg: Config, train: pd.DataFrame) -> dict[str, Any]:
    """The imputation contest; returns the {"strategy", "params"} the features step reads."""
    scores = score_strategies(
        train[cfg.data.features("numeric", "geo")],
        cfg.impute.strategies,
        cfg.impute.folds,
        cfg.impute.mask_fraction,
        cfg.impute.seed,
    )
    winner_name = pick_winner(scores) if not scores.empty else "median"
    chosen = winner_name if cfg.impute.strategy == "auto" else cfg.impute.strategy
    return {"strategy": chosen, "params": cfg.impute.strategies[chosen]}


def choose_features(cfg: Config, train: pd.DataFrame, imputation: dict[str, Any]) -> FeatureSpec:
    """K search: silhouette scan, reference-model CV per candidate K, then the preview fit."""
    data, fcfg = cfg.data, cfg.features
    X, y = train[data.features()], train[data.target]
    ks = list(range(fcfg.k_min, fcfg.k_max + 1, fcfg.k_step))
    weights = y if fcfg.weighted_by_target else None
    scan = silhouette_scan(X[data.features("geo")], ks, fcfg.silhouette_sample, fcfg.seed, fcfg.n_init, weights)
    chosen = int(scan.loc[scan["silhouette"].idxmax(), "k"])
    if fcfg.selection == "cv":
        reference = HistGradientBoostingRegressor(random_state=fcfg.seed)
        cv = {}
        for k in sorted({*fcfg.cv_ks, chosen}):
            model = Pipeline(
                [("preprocess", build_preprocessor(feature_spec_for(cfg, imputation, k))), ("model", reference)]
            )
            cv[k] = cross_validate(model, X, y, fcfg.cv_folds, fcfg.seed)["wmape"].mean()
        chosen = min(cv, key=cv.__getitem__)
    spec = feature_spec_for(cfg, imputation, chosen)
    build_preprocessor(spec).fit(X, y).transform(X.head(fcfg.preview_rows))  # the step's preview
    # the sweep reads the spec back from feature_spec.json: same round trip here
    return FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))


def select(cfg: Config, train: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """Every candidate's grid cross-validated; the winner as selection.json holds it."""
    X, y = train[cfg.data.features()], train[cfg.data.target]
    models, scfg = cfg.models, cfg.select
    cache_dir = tempfile.mkdtemp(prefix="floor-select-")  # shared by all families, as in the step
    results = []
    try:
        for family in models.candidates:
            started = time.perf_counter()
            # the step runs each family in a child process under the threading backend: same backend here
            with parallel_config(backend="threading"):
                rows = evaluate_grid(
                    models.zoo[family], models.grid, spec, X, y, scfg.folds, scfg.seed, scfg.n_jobs, cache_dir
                )
            results.append(CandidateResult(family, "ok", time.perf_counter() - started, rows=rows))
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    best = winner(leaderboard(results))
    return {
        "family": best["family"],
        "params": json.loads(best["params"]),
        "cv_wmape": float(best["cv_wmape"]),
        "seconds": {r.family: round(r.seconds, 3) for r in results},
    }


def grid_point(cfg: Config, spec: FeatureSpec, selection: dict[str, Any]) -> dict[str, Any]:
    # as steps/sweep.py: the first trial is the grid winner exactly
    model = cfg.models.zoo[selection["family"]]
    params = build_estimator(model, selection["params"]).get_params()
    point = tuning.clip_to_space({k: params[k] for k in model.space if k in params}, model.space)
    return point | {f"{tuning.FEATURE_PREFIX}{k}": getattr(spec, k) for k in cfg.sweep.feature_space}


def run_study(
    cfg: Config,
    train: pd.DataFrame,
    spec: FeatureSpec,
    selection: dict[str, Any],
    sampler: str,
    n_trials: int,
    timeout_s: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> optuna.Study:
    """The sweep's study in memory: same sampler seed, pruner, first trial and objective, one worker
    (the floor does not model sweep.n_workers > 1)."""
    X, y = train[cfg.data.features()], train[cfg.data.target]
    study = optuna.create_study(
        direction="minimize",
        sampler=tuning.make_sampler(sampler, cfg.sweep.seed, cfg.sweep.n_startup_trials),
        pruner=tuning.make_pruner(cfg.sweep.pruner, cfg.sweep.n_startup_trials),
    )
    study.enqueue_trial(grid_point(cfg, spec, selection))
    memory_dir = tempfile.mkdtemp(prefix="floor-sweep-")
    model = cfg.models.zoo[selection["family"]]
    sweep = cfg.sweep
    objective = tuning.cv_objective(
        X,
        y,
        spec,
        model,
        selection["params"],
        sweep.feature_space,
        sweep.folds,
        sweep.seed,
        sweep.pruner,
        Memory(memory_dir, verbose=0),
        sweep.n_jobs,
    )
    try:
        # as the step's one worker: its thread limit (None keeps the process's own setting)
        with threadpool_limits(tuning.threads_per_worker(1)):
            study.optimize(
                objective, n_trials=n_trials, timeout=timeout_s, catch=(Exception,), callbacks=list(callbacks)
            )
    finally:
        shutil.rmtree(memory_dir, ignore_errors=True)
    return study


def best_model(cfg: Config, spec: FeatureSpec, selection: dict[str, Any], study: optuna.Study) -> Pipeline:
    # as steps/sweep.py _log_results + steps/register.py: the tuned, unfitted Pipeline
    model = cfg.models.zoo[selection["family"]]
    prefix = tuning.FEATURE_PREFIX
    best = study.best_trial.params
    features = {k.removeprefix(prefix): v for k, v in best.items() if k.startswith(prefix)}
    params = {**model.fixed, **selection["params"], **{k: v for k, v in best.items() if not k.startswith(prefix)}}
    return make_pipeline(dataclasses.replace(spec, **features), estimator_from(model.estimator, params))


def register(cfg: Config, train: pd.DataFrame, test: pd.DataFrame, model: Pipeline) -> dict[str, float]:
    """Final fit, the one scoring of the test set, importances and the latency profile."""
    data = cfg.data
    X, y = train[data.features()], train[data.target]
    X_test, y_test = test[data.features()], test[data.target]
    model.fit(X, y)
    predicted = model.predict(X_test)
    scores = evaluate(y_test, predicted)
    segments = test[data.features("categorical")].assign(income_category=strata(test, data).astype(str))
    segment_wmape(segments, y_test, predicted)
    if not hasattr(model[-1], "feature_importances_"):  # as steps/register.py _log_evaluation
        sample = X_test.sample(min(cfg.registry.importance_rows, len(X_test)), random_state=0)
        permutation_importance(
            model, sample, y_test.loc[sample.index], n_repeats=3, random_state=0, scoring="neg_mean_absolute_error"
        )
    # the step times the model through mlflow.pyfunc; the floor times the bare sklearn Pipeline
    with tempfile.TemporaryDirectory() as empty:
        hardware.measure(Path(empty), lambda _: model, X_test, cfg.registry.latency_calls)
    return scores


def run(cfg: Config, data_path: Path, n_trials: int | None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    with timed(timings, "ingest"):
        raw = ingest(cfg, data_path)
    with timed(timings, "split"):
        train, test = split(raw, cfg.data, cfg.split)
    with timed(timings, "impute"):
        imputation = impute(cfg, train)
    with timed(timings, "features"):
        spec = choose_features(cfg, train, imputation)
    with timed(timings, "select"):
        selection = select(cfg, train, spec)
    trials = n_trials or cfg.sweep.n_trials
    with timed(timings, "sweep"):
        study = run_study(cfg, train, spec, selection, cfg.sweep.sampler, trials, cfg.sweep.timeout_s)
    with timed(timings, "register"):
        scores = register(cfg, train, test, best_model(cfg, spec, selection, study))
    states = [t.state for t in study.trials]
    return {
        "seconds": timings,
        "total_s": round(sum(timings.values()), 3),
        "imputation": imputation,
        "n_clusters": spec.n_clusters,
        "spec": spec.to_dict(),
        "selection": selection,
        "sweep": {
            "trials_requested": trials,
            "trials_finished": sum(s.is_finished() for s in states),
            "trials_complete": states.count(optuna.trial.TrialState.COMPLETE),
            "trials_pruned": states.count(optuna.trial.TrialState.PRUNED),
            "best_trial": study.best_trial.number,
            "best_cv_wmape": study.best_value,
            "n_workers_in_config": cfg.sweep.n_workers,  # the floor always runs one worker
        },
        "test": scores,
        # the point of the floor: none of the tracking stack was loaded
        "mlflow_imported": "mlflow" in sys.modules,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the CSV the pipeline reads")
    parser.add_argument("--hydra-options", default="", help="the pipeline's Hydra overrides, in one string")
    parser.add_argument("--trials", type=int, default=None, help="sweep trials (default: sweep.n_trials)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the result")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg, _ = load_config(ROOT / "config", parse_overrides(args.hydra_options))
    result = run(cfg, args.data, args.trials)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f"[floor] total {result['total_s']:.1f} s; best CV wMAPE {result['sweep']['best_cv_wmape']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
