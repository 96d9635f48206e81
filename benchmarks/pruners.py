"""The pruners side by side: the pipeline's sweep, in memory, once per pruner, from the same inputs.

The inputs are the feature spec and grid winner of the newest pipeline in --store (a `make bench
--keep` store on the full data); each pruner gets sweep.n_trials trials with the sweep's seed and
sampler. Prints one JSON line per pruner: best CV wMAPE, the best so far after 10..50 trials,
trial states, the boosting rounds x folds it trained (the cost that does not depend on load)
and the seconds and load average (which do).

    python -m benchmarks.pruners --store DIR [--pruners hyperband,successive_halving,median] [--hydra ...]
"""

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import optuna

from benchmarks import floor
from benchmarks.machine import say
from benchmarks.settings import ROOT, Settings
from benchmarks.sweep_efficiency import sweep_inputs
from housing_mlops.pipeline.sweep import run_sweep

CHECKPOINTS = (10, 20, 30, 40, 50)


def compare(settings: Settings, pruner: str) -> dict[str, object]:
    """One in-memory study of the pipeline's sweep with `pruner`; its figures."""
    cfg = settings.cfg()
    cfg = dataclasses.replace(cfg, sweep=dataclasses.replace(cfg.sweep, pruner=pruner))
    train, _ = floor.load_train(cfg, settings.data)
    spec, selection, _ = sweep_inputs(settings, None)
    X, y = train[cfg.data.features()], train[cfg.data.target]
    model = cfg.models.zoo[selection["family"]]
    started, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pruners-") as cache:
        outcome = run_sweep(X, y, spec, model, selection, cfg.sweep, pruner, None, cache, progress_bar=False)
    seconds = time.perf_counter() - started
    study = outcome.study
    best, curve = None, []
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE and (best is None or trial.value < best):
            best = trial.value
        curve.append(best)
    return {
        "pruner": pruner,
        "best_cv_wmape": study.best_value,
        # the registered model's: the best trial's, or the average of sweep.ensemble trials
        "registered_cv_wmape": outcome.record["cv"]["wmape"],
        "members": [m["trial"] for m in outcome.record.get("members", [])],
        "grid_cv_wmape": outcome.record["grid_cv_wmape"],
        "best_after": {n: curve[n - 1] for n in CHECKPOINTS if n <= len(curve)},
        "states": outcome.record["study"]["trials"],
        "rounds_x_folds": cfg.sweep.folds * sum(max(t.intermediate_values, default=0) for t in study.trials),
        "seconds": round(seconds, 1),
        "load_avg_1m": [round(load, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    """Compare the pruners on the inputs of --store's newest pipeline; one JSON line each."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pruners", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="folder holding mlflow.db (a bench --keep store)")
    parser.add_argument("--pruners", default="hyperband,successive_halving")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "housing.csv")
    parser.add_argument("--hydra", default="", help="Hydra overrides, e.g. sweep.n_trials=20")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = args.store.resolve()
    settings = Settings(False, (), args.data.resolve(), args.hydra, store, store, store, "python -m benchmarks.pruners")
    for pruner in args.pruners.split(","):
        say(json.dumps(compare(settings, pruner.strip())), tag=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
