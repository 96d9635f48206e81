"""The least a step process costs, fresh or forked from the step server, and the ratio it bounds.

Every step of the pipeline is one `mlflow run` entry point: a process that opens a run in the
SQLite store; so is the main entry point that runs them. This times exactly that
(`benchmarks.minimal_step`: one param logged in one run, on a store created beforehand) two
ways, alternating, the median of --repeats each, on an idle machine: a fresh Python that imports
mlflow itself, and a launcher (as `python -m steps <step>` is) whose step is forked from a step
server that imported mlflow, its SQL stores and every step's modules once, as the pipeline's
does. The compute floor does none of it, so the pipeline costs at least one fresh process (main)
and `steps` forked ones more than its floor, and a cold time of C seconds can reach no better
ratio than C / (C - that overhead). The `mlflow run` launcher, config loading and artifacts come
on top and are not counted; config loading is timed apart, in this process once warm: Hydra's
compose of config/ (what a step run alone does) against reading the config a pipeline composed
(`pipeline.composed`, what its steps do). Prints one JSON line.

    python -m benchmarks.process_floor [--repeats 5] [--cold 240]
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import say
from benchmarks.settings import ROOT
from housing_mlops.config.loading import load_config
from housing_mlops.pipeline.composed import config_for, handed_to_steps
from housing_mlops.pipeline.orchestrator import step_imports
from housing_mlops.pipeline.step_server import ADDRESS_ENV, StepServer

MINIMAL_STEP = "benchmarks.minimal_step"
LAUNCHER = (
    "import sys; from housing_mlops.pipeline.step_server import launch; sys.exit(launch(sys.argv[1], sys.argv[2:]))"
)


def process_seconds(tracking_uri: str) -> float:
    """Wall seconds of one minimal step process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", MINIMAL_STEP, tracking_uri], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def forked_seconds(tracking_uri: str, address: str) -> float:
    """Wall seconds of one minimal step through a launcher and the step server at `address`."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", LAUNCHER, MINIMAL_STEP, tracking_uri],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, ADDRESS_ENV: address},
    )
    return time.perf_counter() - started


def config_seconds(repeats: int) -> tuple[float, float]:
    """Median seconds to compose config/, and to read the config a pipeline handed its steps."""
    cfg, plain = load_config(ROOT / "config", [], estimators=False)  # imports done: both timed warm
    composed, handed = [], []
    with handed_to_steps(ROOT, "", cfg, plain):
        for _ in range(repeats):
            started = time.perf_counter()
            load_config(ROOT / "config", [], estimators=False)
            composed.append(time.perf_counter() - started)
            started = time.perf_counter()
            config_for(ROOT, "", estimators=False)
            handed.append(time.perf_counter() - started)
    return statistics.median(composed), statistics.median(handed)


def main(argv: list[str] | None = None) -> int:
    """Time the minimal step process, fresh and forked, and print the overhead and ratio implied."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.process_floor", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cold", type=float, default=240.0, help="cold pipeline seconds to bound the ratio at")
    args = parser.parse_args(argv)
    steps = len(load_config(ROOT / "config", [], estimators=False)[0].pipeline.steps)
    compose_s, handed_s = config_seconds(args.repeats)
    with tempfile.TemporaryDirectory(prefix="process-floor-") as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        process_seconds(uri)  # creates the store's schema, which a pipeline does once
        with contextlib.closing(StepServer(ROOT, step_imports())) as server:
            server.start()
            if not server.ready(120):
                raise SystemExit("the step server did not start within 120 s")
            address = os.environ[ADDRESS_ENV]
            fresh, forked = [], []
            for _ in range(args.repeats):
                fresh.append(process_seconds(uri))
                forked.append(forked_seconds(uri, address))
    fresh_s, forked_s = statistics.median(fresh), statistics.median(forked)
    overhead = fresh_s + steps * forked_s
    say(
        json.dumps(
            {
                "minimal_step_process_s": round(fresh_s, 2),
                "forked_step_process_s": round(forked_s, 2),
                "steps": steps,
                "overhead_at_least_s": round(overhead, 1),
                "cold_s": args.cold,
                "best_ratio_at_cold": round(args.cold / (args.cold - overhead), 3),
                "cold_needed_for_ratio_1.10_s": round(overhead * 11, 1),
                "config_compose_s": round(compose_s, 3),
                "config_handed_s": round(handed_s, 4),
            }
        ),
        tag=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
