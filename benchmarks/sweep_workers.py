"""`make bench-workers`: sweep trials per minute with 1 and 2 workers sharing one PostgreSQL study.

A throwaway PostgreSQL cluster and an `mlflow server` on it (tests/services.py, the same as the
`postgres` tests); the upstream steps once on a 2,000-row sample with `profile=smoke`; then
`mlflow run . -e sweep` with one process, and with two processes started at once, each on its own
study of TRIALS trials. Prints one line per worker count: wall time (process start included),
the span from the first trial's start to the last trial's end, trials per minute of each, the
median trial, and the load average before and after. Run it on an otherwise idle machine.

    python -m benchmarks.sweep_workers [--trials 24] [--data ../shared/data/housing.csv]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd
from tests.conftest import Store, make_store
from tests.services import TrackingServer, running_postgres


def load() -> str:
    """The load averages over 1/5/15 minutes."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def sweep(store: Store, storage: str, study: str, workers: int, trials: int, folder: Path) -> str:
    """Run `workers` sweep processes on one study; the line of figures."""
    hydra = f"profile=smoke sweep.storage={storage} sweep.study_name={study} sweep.n_trials={trials} sweep.pruner=none"
    start, before = time.monotonic(), load()
    processes = []
    for i in range(workers):
        cwd = folder / f"{study}-{i}"
        cwd.mkdir()
        command = store.command("-e", "sweep", "--experiment-name", "housing-mlops", hydra=hydra)
        processes.append(
            subprocess.Popen(command, env=store.env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outputs = [p.communicate(timeout=3600) for p in processes]
    wall = time.monotonic() - start
    for process, (_, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise SystemExit(f"error: a sweep worker failed:\n{err[-3000:]}")
    finished = [t for t in optuna.load_study(study_name=study, storage=storage).trials if t.state.is_finished()]
    span = (max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)).total_seconds()
    durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in finished)
    return (
        f"workers={workers} trials={len(finished)} wall={wall:.0f} s ({60 * len(finished) / wall:.1f}/min) "
        f"trial span={span:.0f} s ({60 * len(finished) / span:.1f}/min) "
        f"median trial={durations[len(durations) // 2]:.1f} s "
        f"load before {before}, after {load()}"
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(prog="benchmarks/sweep_workers.py")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("HOUSING_DATA_SOURCE", "../shared/data/housing.csv"))
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sweep-workers-"))
    sample = folder / "sample.csv"
    pd.read_csv(args.data).sample(2000, random_state=0).to_csv(sample, index=False)
    with running_postgres() as postgres:
        server = TrackingServer(postgres.url(postgres.create_database("mlflow")), folder / "server")
        server.start()
        try:
            optuna_db = postgres.create_database("optuna")
            base = make_store(folder, sample)
            env = {**base.env, "MLFLOW_TRACKING_URI": server.uri, "PGPASSWORD": postgres.password}
            store = Store(server.uri, env)
            start = time.monotonic()
            store.mlflow_run("-P", "steps=ingest,split,impute,features,select", hydra="profile=smoke")
            sys.stdout.write(f"upstream steps: {time.monotonic() - start:.0f} s, load {load()}\n")
            for workers in (1, 2):
                line = sweep(store, postgres.url(optuna_db), f"w{workers}", workers, args.trials, folder)
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        finally:
            server.kill()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
