"""The compute floor: the pipeline's fits done by one bare process.

Each stage is the library call its step makes (steps/<step>.py), in the same order and with the
same config (folds, seeds, n_jobs, sampler, pruner, trial count), but no MLflow, no Hydra app,
no subprocesses and no artifacts: what is left is the work the pipeline cannot avoid. `bench.py`
divides the pipeline's wall time by this script's to get the orchestration overhead.

    python -m benchmarks.floor --data housing.csv --json floor.json [--trials N] [--hydra-options "..."]

Where it differs from the steps: the sweep's study is in memory on one worker (the floor does
not model sweep.n_workers > 1), and register saves no MLflow model (signature, example,
environment): it profiles the variants from their own files, as the step does, but logs nothing.
"""

import argparse
import dataclasses
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config
from housing_mlops.data import schema
from housing_mlops.data.split import split
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling import k_search
from housing_mlops.modeling.imputer_choice import choose_imputer
from housing_mlops.modeling.selection import select_model
from housing_mlops.pipeline import logs
from housing_mlops.pipeline.sweep import Callback, SweepOutcome, run_sweep
from housing_mlops.registry.candidate import measure

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Time the block into timings[name] (seconds) and print it."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)
        log.info(f"{name}: {timings[name]:.1f} s")


def ingest(cfg: Config, data_path: Path) -> pd.DataFrame:
    """Read and validate the CSV as the ingest step does (the parquet hand-over is MLflow's part)."""
    return schema.validate(schema.read_csv(data_path), cfg.data, data_path.name).frame


def load_train(cfg: Config, data_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) exactly as the split step makes them."""
    return split(ingest(cfg, data_path), cfg.data, cfg.split)


def impute(cfg: Config, train: pd.DataFrame) -> dict[str, Any]:
    """The imputation contest; returns imputation.json's record (strategy, params, winner, ...)."""
    return choose_imputer(train, cfg.data, cfg.impute).record


def choose_features(cfg: Config, train: pd.DataFrame, imputation: dict[str, Any]) -> FeatureSpec:
    """The features step's K search and preview fit; returns the chosen spec."""
    spec = k_search.choose_features(cfg, train, imputation).spec
    # the step hands the spec over as feature_spec.json: same round trip here
    return FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))


def select(cfg: Config, train: pd.DataFrame, spec: FeatureSpec) -> dict[str, Any]:
    """Every candidate's grid cross-validated in this process; selection.json plus seconds per family."""
    with tempfile.TemporaryDirectory(prefix="floor-select-") as cache_dir:
        chosen = select_model(
            cfg.models, cfg.select, spec, train[cfg.data.features()], train[cfg.data.target], cache_dir, isolated=False
        )
    return chosen.record | {"seconds": {r.family: round(r.seconds, 3) for r in chosen.results}}


def run_study(
    cfg: Config,
    train: pd.DataFrame,
    spec: FeatureSpec,
    selection: dict[str, Any],
    sampler: str,
    n_trials: int,
    timeout_s: float | None,
    callbacks: Sequence[Callback] = (),
) -> SweepOutcome:
    """The sweep step's study, in memory on one worker, with this sampler, trial count and timeout."""
    options = dataclasses.replace(cfg.sweep, sampler=sampler, n_trials=n_trials, timeout_s=timeout_s, n_workers=1)
    X, y = train[cfg.data.features()], train[cfg.data.target]
    model = cfg.models.zoo[selection["family"]]
    with tempfile.TemporaryDirectory(prefix="floor-sweep-") as cache_dir:
        return run_sweep(X, y, spec, model, selection, options, "floor", None, cache_dir, callbacks, progress_bar=False)


def register(
    cfg: Config, train: pd.DataFrame, test: pd.DataFrame, best: dict[str, Any], swept: np.ndarray | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """The register step's measurements (`registry.candidate.measure`), without MLflow: test scores, hardware."""
    with tempfile.TemporaryDirectory() as folder:
        candidate = measure(best, train, test, cfg, Path(folder), swept)
    return candidate.assessment.scores, candidate.hardware


def run(cfg: Config, data_path: Path, n_trials: int | None) -> dict[str, Any]:
    """Every stage in pipeline order, timed; the result floor.json holds."""
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
        outcome = run_study(cfg, train, spec, selection, cfg.sweep.sampler, trials, cfg.sweep.timeout_s)
    with timed(timings, "register"):
        scores, hardware_meta = register(cfg, train, test, outcome.record, outcome.predictions)
    study = outcome.study
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
            "cv_wmape": outcome.record["cv"]["wmape"],  # the registered model's
            "members": [m["trial"] for m in outcome.record.get("members", [])],
            "n_workers_in_config": cfg.sweep.n_workers,  # the floor always runs one worker
        },
        "test": scores,
        "hardware": hardware_meta,
        # the point of the floor: none of the tracking stack was loaded
        "mlflow_imported": "mlflow" in sys.modules,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: run the floor and write its JSON result."""
    logs.configure("floor")
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
    log.info(f"total {result['total_s']:.1f} s; best CV wMAPE {result['sweep']['best_cv_wmape']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
