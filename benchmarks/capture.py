"""What inference capture costs a request: `make serve` with capture off and on, side by side.

Both servers (`python -m steps.serve`, native thread pools pinned to one thread) serve the same
model at once, each on its own loopback port and keep-alive connection; the bench alternates
single-row POSTs between them (off, on, off, on, ...), so that both see the same machine load.
Optionally `mlflow models serve` of the same model is a third, the baseline our server replaces:
its answers must be identical. After the calls the servers are stopped (capture writes what it
holds) and the rows in the log are counted.

    python -m benchmarks.capture --store DIR [--model-uri URI] [--calls N] [--data housing.csv] [--baseline]

Not a part of `make bench` (its report has no place for it yet): run it by hand, on the bench's
kept store (`make bench BENCH_ARGS="--only serving --keep"` prints its path) or any store whose
champion is set.
"""

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.machine import say
from benchmarks.processes import stop
from benchmarks.serving import ONE_THREAD, free_port, load_avg, payload, percentiles, wait_for_ping
from benchmarks.settings import BIN, ROOT
from housing_mlops.config.loading import load_config
from housing_mlops.monitoring.inference_log import read_window

MODES = ("off", "on")


def champion_uri() -> str:
    """models:/<registry.model_name>@champion, what `make serve` serves."""
    return f"models:/{load_config(ROOT / 'config', [])[0].registry.model_name}@champion"


def start(mode: str, model_uri: str, env: dict[str, str], work: Path) -> tuple[subprocess.Popen[bytes], int]:
    """One server on a free port: `steps.serve` with capture `off` / `on`, or `mlflow` (mlflow models serve)."""
    port = free_port()
    if mode == "mlflow":
        command = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri or champion_uri(), "--env-manager", "local"]
        command += ["-h", "127.0.0.1", "-p", str(port)]
    else:
        hydra = f"capture.path={work / 'inference-log'}"
        command = [str(BIN / "python"), "-m", "steps.serve", "--port", str(port), "--hydra-options", hydra]
        command += ["--model-uri", model_uri] if model_uri else []  # none: the champion, as `make serve` resolves it
    full_env = env | ONE_THREAD | {"HOUSING_CAPTURE": "1" if mode == "on" else "0"}
    with (work / f"serve-{mode}.log").open("w") as log:
        # own session: stopping it stops the workers it forks, and nothing else
        server = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    return server, port


def capture_overhead(
    model_uri: str, rows: pd.DataFrame, env: dict[str, str], work: Path, calls: int, baseline: bool = False
) -> dict[str, Any]:
    """Single-row latency (p50/p95/p99 ms) of `model_uri` served with capture off and on, alternating.

    Args:
        model_uri: what the servers load ("" = the champion; `models:/...` needs MLFLOW_TRACKING_URI in `env`).
        rows: feature rows, one per request (cycled), without missing values (JSON has no NaN).
        env: the servers' environment.
        work: folder for the servers' logs and the inference log.
        calls: timed requests per server, after 20 untimed ones.
        baseline: also time `mlflow models serve` of the same model, the command `make serve` ran before.
    """
    work.mkdir(parents=True, exist_ok=True)
    modes = (*MODES, "mlflow") if baseline else MODES
    servers = {mode: start(mode, model_uri, env, work) for mode in modes}
    try:
        startup = {
            mode: round(wait_for_ping(server, port, timeout_s=180.0), 2) for mode, (server, port) in servers.items()
        }
        connections = {
            mode: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for mode, (_, port) in servers.items()
        }
        bodies = [payload(rows.iloc[[i]]) for i in range(min(len(rows), calls))]
        timings: dict[str, list[float]] = {mode: [] for mode in modes}
        mismatches = 0
        before = load_avg()
        for i in range(calls + 20):
            answers = {}
            for mode in modes if i % 2 == 0 else reversed(modes):  # neither always goes first
                started = time.perf_counter()
                connections[mode].request(
                    "POST", "/invocations", bodies[i % len(bodies)], {"Content-Type": "application/json"}
                )
                response = connections[mode].getresponse()
                answer = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"{mode}: /invocations answered {response.status}: {answer[:300]!r}")
                answers[mode] = json.loads(answer)["predictions"]
                if i >= 20:
                    timings[mode].append(elapsed)
            mismatches += any(answers[m] != answers["off"] for m in modes)
        after = load_avg()
        for connection in connections.values():
            connection.close()
    finally:
        for server, _ in servers.values():
            stop(server)  # SIGTERM: the capturing server writes what it holds
    log = read_window(work / "inference-log", "1d")
    figures = {mode: percentiles(ms) | {"mean_ms": round(float(np.mean(ms)), 3)} for mode, ms in timings.items()}
    overhead = {
        f"{q}_pct": round(100 * (figures["on"][f"{q}_ms"] / figures["off"][f"{q}_ms"] - 1), 1) for q in ("p50", "p95")
    }
    return {
        "model_uri": model_uri or champion_uri(),
        "calls": calls,
        "latency": figures,
        "overhead": overhead,
        "answers_differ": mismatches,
        "captured_rows": len(log.rows),
        "expected_rows": calls + 20,
        "startup_s": startup,
        "load_avg_1m": [before, after],
    }


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""
    names = {"off": "`make serve`, capture off", "on": "`make serve`, capture on", "mlflow": "`mlflow models serve`"}
    lines = ["| server | p50 ms | p95 ms | p99 ms | mean ms |", "|---|---:|---:|---:|---:|"]
    for mode, f in result["latency"].items():
        lines.append(
            f"| {names[mode]} | {f['p50_ms']:.3f} | {f['p95_ms']:.3f} | {f['p99_ms']:.3f} | {f['mean_ms']:.3f} |"
        )
    o = result["overhead"]
    lines.append(
        f"\ncapture on vs off: p50 {o['p50_pct']:+.1f} %, p95 {o['p95_pct']:+.1f} %; {result['calls']:,} single-row "
        f"calls each, alternating; captured {result['captured_rows']:,} of {result['expected_rows']:,} rows; "
        f"answers that differ between servers: {result['answers_differ']}; load average 1 min "
        f"{result['load_avg_1m'][0]:.2f} → {result['load_avg_1m'][1]:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure on the champion (or --model-uri) of the store in --store; print the table and the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="folder holding mlflow.db")
    parser.add_argument("--model-uri", default="", help="default: the champion, as `make serve` serves it")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "housing.csv")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--baseline", action="store_true", help="also time `mlflow models serve`")
    parser.add_argument(
        "--work", type=Path, default=None, help="logs and inference log (default <store>/capture-bench)"
    )
    args = parser.parse_args(argv)
    store = args.store.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT"))}
    env |= {
        "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "WANDB_MODE": "disabled",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    features = load_config(ROOT / "config", [])[0].data.features()
    rows = pd.read_csv(args.data)[features].dropna()
    work = args.work or store / "capture-bench"
    result = capture_overhead(args.model_uri, rows.sample(frac=1, random_state=0), env, work, args.calls, args.baseline)
    say(table(result), tag=False)
    (work / "capture.json").write_text(json.dumps(result, indent=2))
    say(f"figures in {work / 'capture.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
