"""What the study storage costs the sweep apart from its fits: one study, three storages.

A 50-trial TPE study whose objective only asks Optuna what the sweep's asks (8 parameters, three
rungs reported and checked by the successive-halving pruner, two user attributes) runs in memory,
on a SQLite file with SQLite's defaults (rollback journal, synchronous=FULL), and on a SQLite
file as `study_store.open_storage` opens it (WAL, synchronous=NORMAL). Alternating, the median
of --repeats each; prints one JSON line.

    python -m benchmarks.study_storage [--trials 50] [--repeats 3]
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from benchmarks.machine import say
from housing_mlops.modeling import study_store

RUNGS = (50, 150, 450)


def objective(trial: optuna.Trial) -> float:
    """The sweep's traffic to the storage, without its fits."""
    for name in ("learning_rate", "max_leaf_nodes", "min_samples_leaf", "l2", "max_iter", "gamma", "bins"):
        trial.suggest_float(name, 0.0, 1.0)
    trial.suggest_int("n_clusters", 40, 50)
    for rung in RUNGS:
        trial.report(0.5 - rung / 10_000, rung)
        if trial.should_prune():
            raise optuna.TrialPruned()
    trial.set_user_attr("rmse", 1.0)
    trial.set_user_attr("fit_s", 1.0)
    return 0.45


def study_seconds(storage: Callable[[], str | optuna.storages.BaseStorage | None], trials: int) -> float:
    """Wall seconds of `trials` trials on a fresh storage."""
    study = optuna.create_study(
        storage=storage(),
        sampler=optuna.samplers.TPESampler(seed=42, multivariate=True),
        pruner=optuna.pruners.SuccessiveHalvingPruner(),
    )
    started = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Time the study on each storage and print the medians."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study_storage", description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="study-storage-") as folder:
        files = iter(range(1_000_000))

        def url() -> str:
            return f"sqlite:///{Path(folder) / f'{next(files)}.db'}"

        storages: dict[str, Callable[[], str | optuna.storages.BaseStorage | None]] = {
            "memory": lambda: None,
            "sqlite_default": url,
            "sqlite_as_opened": lambda: study_store.open_storage(url(), heartbeat_s=60),
        }
        seconds: dict[str, list[float]] = {name: [] for name in storages}
        for _ in range(args.repeats):
            for name, storage in storages.items():
                seconds[name].append(study_seconds(storage, args.trials))
    say(
        json.dumps({"trials": args.trials} | {f"{k}_s": round(statistics.median(v), 2) for k, v in seconds.items()}),
        tag=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
