"""The least a fresh step process costs, and what it bounds: the pipeline / floor ratio at a given cold time.

Every step of the pipeline is one `mlflow run` entry point, today a fresh process that starts
Python, imports mlflow and opens a run in the SQLite store; so is the main entry point that runs
them. This times exactly that (one param logged in one run, on a store created beforehand), the
median of --repeats, on an idle machine. The compute floor does none of it, so the pipeline costs
at least (steps + 1) such processes more than its floor, and a cold time of C seconds can reach
no better ratio than C / (C - that overhead). The `mlflow run` launcher, config loading and
artifacts come on top and are not counted; step processes forked from one that already imported
mlflow would escape the bound. Prints one JSON line.

    python -m benchmarks.process_floor [--repeats 5] [--cold 240]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import say
from benchmarks.settings import ROOT
from housing_mlops.config.loading import load_config

MINIMAL_STEP = """
import sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
with mlflow.start_run():
    mlflow.log_param("step", "minimal")
"""


def process_seconds(tracking_uri: str) -> float:
    """Wall seconds of one minimal step process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", MINIMAL_STEP, tracking_uri], check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Time the minimal step process and print the overhead and ratio it implies."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.process_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=float, default=240.0, help="cold pipeline seconds to bound the ratio at")
    args = parser.parse_args(argv)
    steps = len(load_config(ROOT / "config", [], estimators=False)[0].pipeline.steps)
    with tempfile.TemporaryDirectory(prefix="process-floor-") as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        process_seconds(uri)  # creates the store's schema, which a pipeline does once
        median = statistics.median(process_seconds(uri) for _ in range(args.repeats))
    overhead = (steps + 1) * median
    say(
        json.dumps(
            {
                "minimal_step_process_s": round(median, 2),
                "processes": steps + 1,
                "overhead_at_least_s": round(overhead, 1),
                "cold_s": args.cold,
                "best_ratio_at_cold": round(args.cold / (args.cold - overhead), 3),
                "cold_needed_for_ratio_1.10_s": round(overhead * 11, 1),
            }
        ),
        tag=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
