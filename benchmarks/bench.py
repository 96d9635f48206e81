"""`make bench`: how fast the pipeline is, and how close to its compute floor.

Parts (all by default; `--only cold,floor,cached,serving,sweep` picks some):
  cold     `mlflow run . --env-manager local` (as `make pipeline`) on an empty tracking store;
           per-step wall times from the pipeline run's pipeline.json and the step runs
  floor    the same fits by a bare script (benchmarks/floor.py): no MLflow, Hydra app or subprocesses
  cached   the same command again on the same store, every step a cache hit (median of repeats)
  serving  the champion's single-row latency and 1,000-row throughput, in-process and over HTTP
  sweep    best CV wMAPE against trial count for TPE and random sampling (the costly part)

Writes <out>/<date>.json, <date>.md (and <date>-sweep.png), and puts the table in the README's
Performance section. `--quick` runs everything on a 2,000-row sample with the smoke overrides,
writes to benchmarks/results/quick/ and never touches the README.

    python -m benchmarks.bench [--quick] [--only PARTS] [--out DIR] [--store DIR] [--keep]
"""

import argparse
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import floor
from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.registry import hardware

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PARTS = ("cold", "floor", "cached", "serving", "sweep")
GOALS = {"cold_s": 300.0, "ratio": 1.10, "cached_s": 10.0}
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
QUICK_ROWS = 2000
LIBRARIES = ("mlflow", "scikit-learn", "optuna", "pandas", "numpy", "hydra-core", "joblib")


@dataclass
class Settings:
    quick: bool
    parts: tuple[str, ...]
    data: Path  # the CSV every part reads (the sample in quick mode)
    hydra: str  # Hydra overrides for the pipeline and the floor
    out: Path
    work: Path  # temp dir: store, logs, sample
    store: Path  # folder holding mlflow.db
    command: str
    latency_calls: int = 1000
    batch_repeats: int = 20
    cached_repeats: int = 3
    sweep_trials: int = 50
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.store / 'mlflow.db'}"

    @property
    def env(self) -> dict[str, str]:
        """What `make pipeline` gives `mlflow run`, pointed at the bench's own store."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT"))}
        return inherited | {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "HOUSING_DATA_SOURCE": str(self.data),
            "WANDB_MODE": "disabled",
        }

    def cfg(self) -> Config:
        return load_config(ROOT / "config", parse_overrides(self.hydra))[0]


# ---------------------------------------------------------------- machine and output


def machine_info(quick: bool) -> dict[str, Any]:
    host = hardware.host_fingerprint()
    sha = _git("rev-parse", "--short", "HEAD")
    return {
        "cpu_model": host["cpu_model"],
        "cores": host["cores"],
        "memory_gb": host["memory_gb"],
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "libraries": {name: metadata.version(name) for name in LIBRARIES},
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ},
        "git_sha": sha,
        "git_dirty": bool(_git("status", "--porcelain")),
        "quick": quick,
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def machine_line(m: dict[str, Any]) -> str:
    libs = m["libraries"]
    return (
        f"{m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB RAM; Python {m['python']}, "
        f"mlflow {libs['mlflow']}, scikit-learn {libs['scikit-learn']}, optuna {libs['optuna']}; "
        f"git {m['git_sha']}{' (uncommitted changes)' if m['git_dirty'] else ''}"
    )


def say(settings: Settings, label: str, value: str) -> None:
    """One figure on the console, with the machine it was measured on beside it."""
    m = settings.machine
    print(f"[bench] {label}: {value}    ({m['cores']} cores, {m['cpu_model']})", flush=True)


def percentiles(ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


# ---------------------------------------------------------------- cold and cached pipeline


def pipeline_command(settings: Settings) -> list[str]:
    # as `make pipeline` with STEPS and HYDRA: the default pipeline, every step
    return [
        str(BIN / "mlflow"),
        "run",
        str(ROOT),
        "--env-manager",
        "local",
        "-P",
        "steps=",
        "-P",
        f"hydra_options={settings.hydra}",
    ]


def run_logged(command: list[str], log: Path, cwd: Path, env: dict[str, str] | None) -> int:
    """Run `command` with its output in `log`; its exit code. The command gets a process group
    of its own, killed whole if the bench stops early: `mlflow run` leaves its step processes
    running when only it is killed."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def unwind_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so `run_logged` gets to stop its child's process group."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def run_pipeline(settings: Settings, log: Path) -> float:
    """Wall seconds of one `mlflow run`; its output goes to `log`."""
    started = time.perf_counter()
    code = run_logged(pipeline_command(settings), log, settings.work, settings.env)
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"`mlflow run` failed (exit {code}); its output: {log}\n{log.read_text()[-3000:]}")
    return seconds


def latest_pipeline(settings: Settings) -> dict[str, Any]:
    """pipeline.json of the newest pipeline run, with each step run's own start-to-end time."""
    from mlflow.artifacts import load_dict
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.cfg().tracking.experiment_name)
    if experiment is None:
        raise RuntimeError(f"no pipeline run in {settings.tracking_uri}: run the `cold` part first")
    (run,) = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`housing.pipeline` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    record = load_dict(f"{run.info.artifact_uri}/pipeline.json")
    for step in record["steps"]:
        info = client.get_run(step["run_id"])
        step["run_s"] = round((info.info.end_time - info.info.start_time) / 1000, 3)
        step["metrics"] = info.data.metrics
    return record


def cold(settings: Settings) -> dict[str, Any]:
    if (settings.store / "mlflow.db").exists():
        raise RuntimeError(f"{settings.store} already holds a store: the cold run needs an empty one")
    settings.store.mkdir(parents=True, exist_ok=True)
    wall = run_pipeline(settings, settings.work / "cold.log")
    record = latest_pipeline(settings)
    steps = [
        {"step": s["step"], "status": s["status"], "wall_s": s["duration_s"], "run_s": s["run_s"]}
        for s in record["steps"]
    ]
    by_step = {s["step"]: s["metrics"] for s in record["steps"]}
    sweep = by_step.get("sweep", {})
    result = {
        "wall_s": round(wall, 2),
        "steps": steps,
        "outside_steps_s": round(wall - sum(s["wall_s"] for s in steps), 2),
        "sweep_trials_finished": int(sum(sweep.get(f"trials_{k}", 0) for k in ("complete", "pruned", "fail"))),
        "sweep_best_cv_wmape": sweep.get("best_cv_wmape"),
        "test_wmape": by_step.get("register", {}).get("test_wmape"),
    }
    say(settings, "pipeline, cold", f"{wall:.1f} s")
    for s in steps:
        say(settings, f"  step {s['step']}", f"{s['wall_s']:.1f} s (inside its run {s['run_s']:.1f} s)")
    return result


def ensure_store(settings: Settings) -> None:
    """Parts that need a trained champion get one: an untimed pipeline run when the store is empty."""
    if not (settings.store / "mlflow.db").exists():
        print("[bench] no store yet: one untimed pipeline run first", flush=True)
        settings.store.mkdir(parents=True, exist_ok=True)
        run_pipeline(settings, settings.work / "setup.log")


def cached(settings: Settings) -> dict[str, Any]:
    ensure_store(settings)
    # untimed first re-run: brings a reused store up to date with the current code and config
    run_pipeline(settings, settings.work / "cached-warmup.log")
    warmup_ran = [s["step"] for s in latest_pipeline(settings)["steps"] if s["status"] != "cached"]
    walls, ran = [], set()
    for i in range(settings.cached_repeats):
        walls.append(run_pipeline(settings, settings.work / f"cached-{i}.log"))
        ran |= {s["step"] for s in latest_pipeline(settings)["steps"] if s["status"] != "cached"}
    result = {
        "median_s": round(statistics.median(walls), 2),
        "runs_s": [round(w, 2) for w in walls],
        "fully_cached": not ran,
        "steps_that_ran": sorted(ran),
        "warmup_ran": warmup_ran,
    }
    say(settings, f"pipeline, fully cached (median of {len(walls)})", f"{result['median_s']:.1f} s")
    if ran:
        # a cache key covers the code: an edit to src/, steps/ or MLproject during the bench re-runs steps
        print(f"[bench] warning: the re-runs were not fully cached, {sorted(ran)} ran", file=sys.stderr, flush=True)
    return result


# ---------------------------------------------------------------- floor


def run_floor(settings: Settings, trials: int | None) -> dict[str, Any]:
    """benchmarks/floor.py in a fresh interpreter, timed from outside like the pipeline."""
    out = settings.work / "floor.json"
    command = [sys.executable, "-m", "benchmarks.floor", "--data", str(settings.data), "--json", str(out)]
    command += ["--hydra-options", settings.hydra] + (["--trials", str(trials)] if trials else [])
    started = time.perf_counter()
    code = run_logged(command, settings.work / "floor.log", ROOT, settings.env)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the floor failed (exit {code}): {settings.work / 'floor.log'}")
    result = json.loads(out.read_text()) | {"wall_s": round(wall, 2), "trials_from": "pipeline" if trials else "config"}
    say(settings, "compute floor", f"{wall:.1f} s ({result['sweep']['trials_finished']} sweep trials)")
    return result


# ---------------------------------------------------------------- serving


def serving_rows(settings: Settings) -> pd.DataFrame:
    """Feature rows as the model's signature has them (validated and coerced like ingest)."""
    cfg = settings.cfg()
    return floor.ingest(cfg, settings.data)[cfg.data.features()]


def serving(settings: Settings) -> dict[str, Any]:
    import mlflow

    ensure_store(settings)
    cfg = settings.cfg()
    uri = f"models:/{cfg.registry.model_name}@champion"
    mlflow.set_tracking_uri(settings.tracking_uri)
    rows = serving_rows(settings)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(settings.work / "champion")))
    # the same measurement register records on the version (hardware.*), with more calls
    profile = hardware.measure(
        local, mlflow.pyfunc.load_model, rows, settings.latency_calls, 1000, settings.batch_repeats
    )
    in_process = {
        "p50_ms": profile["latency_p50_ms"],
        "p95_ms": profile["latency_p95_ms"],
        "p99_ms": profile["latency_p99_ms"],
        "batch_rows_per_s": profile["batch_rows_per_s"],
        "load_s": profile["load_s"],
        "size_mb": profile["size_mb"],
    }
    say(settings, "serving in-process p50/p95/p99", _latency_text(in_process))
    say(settings, "serving in-process batch", f"{in_process['batch_rows_per_s']:,.0f} rows/s")
    over_http = http_serving(settings, uri, rows.dropna())  # JSON has no NaN
    say(settings, "serving HTTP p50/p95/p99", _latency_text(over_http))
    say(settings, "serving HTTP batch", f"{over_http['batch_rows_per_s']:,.0f} rows/s")
    return {"model_uri": uri, "calls": settings.latency_calls, "in_process": in_process, "http": over_http}


def _latency_text(figures: dict[str, float]) -> str:
    return f"{figures['p50_ms']:.2f} / {figures['p95_ms']:.2f} / {figures['p99_ms']:.2f} ms"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_serving(settings: Settings, uri: str, rows: pd.DataFrame) -> dict[str, Any]:
    port = free_port()
    env = settings.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    log = (settings.work / "serve.log").open("w")
    # own session: stopping it stops the workers it forks, and nothing else
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        startup = wait_for_ping(server, port, timeout_s=180.0)
        result = time_http(port, rows, settings.latency_calls, settings.batch_repeats)
        return result | {"startup_s": round(startup, 2), "port": port}
    finally:
        stop(server)
        log.close()


def wait_for_ping(server: subprocess.Popen, port: int, timeout_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"`mlflow models serve` exited with {server.returncode}; see serve.log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"`mlflow models serve` not ready after {timeout_s:.0f} s")


def stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def payload(frame: pd.DataFrame) -> bytes:
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()


def time_http(port: int, rows: pd.DataFrame, calls: int, repeats: int) -> dict[str, Any]:
    """Single-row and 1,000-row POSTs to /invocations over one keep-alive connection
    (a client reusing its connection, as an HTTP client library does)."""
    singles = [payload(rows.iloc[[i]]) for i in range(min(calls, len(rows)))]
    batch = payload(rows.sample(1000, replace=len(rows) < 1000, random_state=0))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(body: bytes) -> float:
        started = time.perf_counter()
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"/invocations answered {response.status}: {answer[:300]!r}")
        return time.perf_counter() - started

    try:
        post(singles[0])  # warm-up
        latencies = [post(singles[i % len(singles)]) * 1000 for i in range(calls)]
        batch_s = statistics.median(post(batch) for _ in range(repeats))
    finally:
        connection.close()
    return percentiles(latencies) | {"batch_rows_per_s": round(1000 / batch_s, 1)}


# ---------------------------------------------------------------- sweep efficiency


def sweep_inputs(settings: Settings, floor_result: dict[str, Any] | None) -> tuple[FeatureSpec, dict[str, Any], str]:
    """The feature spec and grid winner the sweep starts from: the pipeline's own artifacts
    when a store exists, else the floor's, else computed by the floor's functions."""
    if (settings.store / "mlflow.db").exists():
        from mlflow.artifacts import load_text

        steps = {s["step"]: s["run_id"] for s in latest_pipeline(settings)["steps"]}
        spec = json.loads(load_text(f"{_artifact_uri(settings, steps['features'])}/feature_spec.json"))
        selection = json.loads(load_text(f"{_artifact_uri(settings, steps['select'])}/selection.json"))
        return FeatureSpec.from_dict(spec), selection, "pipeline store"
    if floor_result is not None:
        return FeatureSpec.from_dict(floor_result["spec"]), floor_result["selection"], "floor"
    cfg = settings.cfg()
    train, _ = floor.load_train(cfg, settings.data)
    spec = floor.choose_features(cfg, train, floor.impute(cfg, train))
    return spec, floor.select(cfg, train, spec), "computed"


def _artifact_uri(settings: Settings, run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(settings.tracking_uri).get_run(run_id).info.artifact_uri


def sweep_efficiency(settings: Settings, floor_result: dict[str, Any] | None, plot: Path) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = settings.cfg()
    train, _ = floor.load_train(cfg, settings.data)
    spec, selection, source = sweep_inputs(settings, floor_result)
    curves: dict[str, Any] = {}
    for sampler in ("tpe", "random"):
        curve: list[float | None] = []

        def record(study: optuna.Study, trial: optuna.trial.FrozenTrial, curve: list[float | None] = curve) -> None:
            done = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
            curve.append(min(done) if done else None)

        started = time.perf_counter()
        study = floor.run_study(cfg, train, spec, selection, sampler, settings.sweep_trials, None, [record])
        states = [t.state.name.lower() for t in study.trials]
        curves[sampler] = {
            "best_so_far": curve,
            "final_best": study.best_value,
            "best_at_trial": study.best_trial.number + 1,  # 1-based, as the curve's x axis
            "trials": len(study.trials),
            "pruned": states.count("pruned"),
            "seconds": round(time.perf_counter() - started, 1),
        }
        say(settings, f"sweep {sampler}, best CV wMAPE after {len(curve)} trials", f"{study.best_value:.4f}")
    plot_curves(curves, plot)
    return {
        "family": selection["family"],
        "inputs_from": source,
        "folds": cfg.sweep.folds,
        "n_startup_trials": cfg.sweep.n_startup_trials,
        "samplers": curves,
    }


def plot_curves(curves: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for sampler, data in curves.items():
        values = [np.nan if v is None else v for v in data["best_so_far"]]
        ax.plot(
            range(1, len(values) + 1),
            values,
            marker=".",
            drawstyle="steps-post",
            label=f"{sampler} (best {data['final_best']:.4f})",
        )
    ax.set_xlabel("trials")
    ax.set_ylabel("best CV wMAPE so far")
    ax.set_title("Sweep efficiency: TPE vs random sampling (same seed, grid winner first)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- report


def checkpoints(n: int) -> list[int]:
    marks = [1, 5, 10, 20, 30, 40, 50, 75, 100]
    return sorted({m for m in marks if m <= n} | {n})


def render(results: dict[str, Any], image_dir: str) -> str:
    """The Markdown report; `image_dir` is where the plot is relative to the Markdown file."""
    m, quick = results["machine"], results["machine"]["quick"]
    rows = results["data"]["rows"]
    where = (
        f"{rows:,}-row sample, smoke overrides (goals are for the full data)" if quick else f"full data ({rows:,} rows)"
    )
    caption = f"Machine: {machine_line(m)}"
    lines = [
        f"Benchmark of {results['date']} on the {where}, `{results['command']}`.",
        "",
        caption,
        "",
        *summary_table(results),
    ]
    if "cold" in results:
        lines += ["", f"Per step, cold run. {caption}", "", *steps_table(results)]
    if "serving" in results:
        lines += ["", f"Serving `{results['serving']['model_uri']}`. {caption}", "", *serving_table(results)]
    if "sweep" in results:
        lines += ["", f"Sweep efficiency. {caption}", "", *sweep_table(results)]
        lines += ["", f"![best CV wMAPE vs trials]({image_dir}{results['sweep']['plot']})"]
    for part, error in results.get("errors", {}).items():
        lines += ["", f"**{part} failed:** {error.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def _met(value: float | None, goal: float) -> str:
    return "—" if value is None else ("yes" if value <= goal else "**no**")


def summary_table(r: dict[str, Any]) -> list[str]:
    rows = ["| measure | value | goal | met |", "|---|---|---|---|"]
    if "cold" in r:
        wall = r["cold"]["wall_s"]
        rows.append(
            f"| pipeline end to end, cold (empty store) | {wall:.1f} s | ≤ {GOALS['cold_s']:.0f} s | "
            f"{_met(wall, GOALS['cold_s'])} |"
        )
    if "floor" in r:
        f = r["floor"]
        same = {
            True: ", same best CV and test wMAPE as the pipeline",
            False: ", **results differ from the pipeline's**",
        }
        label = f"compute floor: same fits, bare script ({f['sweep']['trials_finished']} sweep trials"
        label += same.get(f.get("same_best_as_pipeline") and f.get("same_test_wmape_as_pipeline"), "") + ")"
        rows.append(f"| {label} | {f['wall_s']:.1f} s | | |")
    if "ratio" in r:
        rows.append(
            f"| pipeline / floor | {r['ratio']:.3f} | ≤ {GOALS['ratio']:.2f} | {_met(r['ratio'], GOALS['ratio'])} |"
        )
    if "cached" in r:
        c = r["cached"]
        label, met = f"fully cached re-run (median of {len(c['runs_s'])})", _met(c["median_s"], GOALS["cached_s"])
        if not c["fully_cached"]:
            label, met = f"re-run, **not fully cached** ({', '.join(c['steps_that_ran'])} ran)", "—"
        rows.append(f"| {label} | {c['median_s']:.1f} s | ≤ {GOALS['cached_s']:.0f} s | {met} |")
    if "serving" in r:
        s = r["serving"]
        for name, key in (("in-process `mlflow.pyfunc`", "in_process"), ("HTTP `mlflow models serve`", "http")):
            rows.append(f"| single row, {name}, p50 / p95 / p99 | {_latency_text(s[key])} | | |")
            rows.append(f"| 1,000-row batch, {name} | {s[key]['batch_rows_per_s']:,.0f} rows/s | | |")
    if "sweep" in r:
        curves = r["sweep"]["samplers"]
        n = min(len(c["best_so_far"]) for c in curves.values())
        best = " / ".join(f"{curves[s]['final_best']:.4f}" for s in ("tpe", "random"))
        rows.append(f"| sweep: best CV wMAPE after {n} trials, TPE / random | {best} | | |")
    return rows


def steps_table(r: dict[str, Any]) -> list[str]:
    floor_s = r.get("floor", {}).get("seconds", {})
    rows = [
        "| step | pipeline wall (s) | inside its MLflow run (s) | floor (s) | pipeline / floor |",
        "|---|---|---|---|---|",
    ]
    for s in r["cold"]["steps"]:
        f = floor_s.get(s["step"])
        ratio = f"{s['wall_s'] / f:.2f}" if f and f >= 0.5 else "—"  # ratios of sub-second times are noise
        rows.append(
            f"| {s['step']} | {s['wall_s']:.1f} | {s['run_s']:.1f} | {'—' if f is None else f'{f:.1f}'} | {ratio} |"
        )
    rows.append(f"| (launcher, orchestrator, between steps) | {r['cold']['outside_steps_s']:.1f} | | | |")
    return rows


def serving_table(r: dict[str, Any]) -> list[str]:
    s = r["serving"]
    rows = [
        "| path | p50 (ms) | p95 (ms) | p99 (ms) | 1,000-row batch (rows/s) | ready in (s) | calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, key, ready in (
        ("in-process `mlflow.pyfunc`", "in_process", s["in_process"]["load_s"]),
        ("HTTP `mlflow models serve`", "http", s["http"]["startup_s"]),
    ):
        f = s[key]
        rows.append(
            f"| {name} | {f['p50_ms']:.2f} | {f['p95_ms']:.2f} | {f['p99_ms']:.2f} | "
            f"{f['batch_rows_per_s']:,.0f} | {ready:.2f} | {s['calls']} |"
        )
    return rows


def sweep_table(r: dict[str, Any]) -> list[str]:
    curves = r["sweep"]["samplers"]
    n = min(len(c["best_so_far"]) for c in curves.values())
    rows = ["| trials | TPE best CV wMAPE | random best CV wMAPE |", "|---|---|---|"]
    for k in checkpoints(n):
        cells = [curves[s]["best_so_far"][k - 1] for s in ("tpe", "random")]
        rows.append(f"| {k} | " + " | ".join("—" if v is None else f"{v:.4f}" for v in cells) + " |")
    timing = ", ".join(
        f"{s}: {c['seconds']:.0f} s, {c['pruned']} pruned, best at trial {c['best_at_trial']}"
        for s, c in curves.items()
    )
    startup = r["sweep"]["n_startup_trials"]
    rows += [
        "",
        f"{r['sweep']['family']}, {r['sweep']['folds']}-fold CV, no timeout, the grid winner as trial 1; {timing}. "
        f"TPE draws its first {startup} trials at random from the same seed, so the curves coincide up to there.",
    ]
    return rows


def update_readme(readme: Path, markdown: str) -> None:
    """Replace what lies between the bench markers with `markdown`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{readme} has no {README_START} ... {README_END} markers")
    block = f"{README_START}\n{markdown.strip()}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: block, text, count=1))


# ---------------------------------------------------------------- driver


def default_data() -> Path:
    given = os.environ.get("HOUSING_DATA_SOURCE")
    for candidate in (given, ROOT / "data" / "housing.csv", ROOT.parent / "shared" / "data" / "housing.csv"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise SystemExit("error: no housing.csv: set HOUSING_DATA_SOURCE or run `make data`")


def invocation(argv: list[str]) -> str:
    args = shlex.join(argv)
    if os.environ.get("MAKELEVEL"):
        return f"make bench BENCH_ARGS={shlex.quote(args)}" if args else "make bench"
    return f"python -m benchmarks.bench {args}".strip()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,}-row sample, smoke overrides, few calls")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts among {','.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results[/quick])")
    parser.add_argument("--data", type=Path, default=None, help="housing.csv (default HOUSING_DATA_SOURCE)")
    parser.add_argument("--hydra", default="", help="extra Hydra overrides for the pipeline and the floor")
    parser.add_argument("--store", type=Path, default=None, help="reuse the store of an earlier --keep run (no cold)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (store, logs) and print its path")
    parser.add_argument(
        "--readme", type=Path, default=ROOT / "README.md", help="README whose Performance section is set"
    )
    args = parser.parse_args(argv)
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"--only: unknown part(s) {unknown}; expected among {','.join(PARTS)}")
    if args.store and "cold" in parts:
        parser.error("--store reuses a store, so it cannot be combined with the cold part")
    args.parts = tuple(p for p in PARTS if p in parts)
    return args


def settings_from(args: argparse.Namespace, argv: list[str], work: Path) -> Settings:
    data = (args.data or default_data()).resolve()
    hydra = args.hydra
    if args.quick:
        sample = work / "housing_sample.csv"
        full = pd.read_csv(data)
        full.sample(min(QUICK_ROWS, len(full)), random_state=0).to_csv(sample, index=False)  # as `make smoke`
        # the smoke profile (config/profile/smoke.yaml), as `make smoke`: its short TPE start-up
        # lets a few trials already tell TPE from random sampling
        data, hydra = sample, f"profile=smoke {hydra}".strip()
    settings = Settings(
        quick=args.quick,
        parts=args.parts,
        data=data,
        hydra=hydra,
        out=args.out or ROOT / "benchmarks" / "results" / ("quick" if args.quick else ""),
        work=work,
        store=(args.store or work / "store").resolve(),
        command=invocation(argv),
        machine=machine_info(args.quick),
    )
    if args.quick:
        settings.latency_calls, settings.batch_repeats, settings.sweep_trials = 100, 3, 6
    return settings


def measure(settings: Settings) -> dict[str, Any]:
    date = datetime.now().strftime("%Y-%m-%d")
    results: dict[str, Any] = {"date": date, "command": settings.command, "machine": settings.machine}
    results["data"] = {"path": str(settings.data), "rows": sum(1 for _ in settings.data.open()) - 1}
    results["hydra_overrides"] = settings.hydra
    settings.out.mkdir(parents=True, exist_ok=True)
    code = code_digest()
    for part in settings.parts:
        print(f"[bench] --- {part}", flush=True)
        try:
            results[part] = run_part(part, settings, results)
        except Exception as exc:  # one failing part must not lose the figures of the others
            results.setdefault("errors", {})[part] = str(exc)
            print(f"[bench] {part} failed: {exc}", file=sys.stderr, flush=True)
    results["code_changed_during_run"] = code_digest() != code
    if "cold" in results and "floor" in results:
        results["ratio"] = round(results["cold"]["wall_s"] / results["floor"]["wall_s"], 3)
        say(settings, "pipeline / floor", f"{results['ratio']:.3f}")
        # the sign the floor did the same work: same trials, same final model
        results["floor"]["same_best_as_pipeline"] = _same(
            results["floor"]["sweep"]["best_cv_wmape"], results["cold"]["sweep_best_cv_wmape"]
        )
        results["floor"]["same_test_wmape_as_pipeline"] = _same(
            results["floor"]["test"]["wmape"], results["cold"]["test_wmape"]
        )
    results["goals"] = GOALS
    return results


def code_digest() -> str:
    """What the step cache keys hash, roughly: edits made while the bench runs make its figures moot."""
    digest = hashlib.sha256()
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "steps").glob("*.py"))]
    for path in [*files, *sorted((ROOT / "config").rglob("*.yaml")), ROOT / "MLproject"]:
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()


def run_part(part: str, settings: Settings, results: dict[str, Any]) -> dict[str, Any]:
    if part == "cold":
        return cold(settings)
    if part == "floor":
        # the pipeline's finished trial count, so a sweep cut short by its timeout compares like for like
        trials = results.get("cold", {}).get("sweep_trials_finished") or _store_trials(settings)
        return run_floor(settings, trials)
    if part == "cached":
        return cached(settings)
    if part == "serving":
        return serving(settings)
    plot = f"{results['date']}-sweep.png"
    return sweep_efficiency(settings, results.get("floor"), settings.out / plot) | {"plot": plot}


def _store_trials(settings: Settings) -> int | None:
    """The pipeline sweep's finished trials, from a reused store (None: use sweep.n_trials)."""
    if not (settings.store / "mlflow.db").exists():
        return None
    metrics = {s["step"]: s["metrics"] for s in latest_pipeline(settings)["steps"]}.get("sweep", {})
    return int(sum(metrics.get(f"trials_{k}", 0) for k in ("complete", "pruned", "fail"))) or None


def _same(a: float | None, b: float | None) -> bool | None:
    """Did the floor's sweep reach the pipeline's best value (the sign it did the same trials)?"""
    return None if a is None or b is None else bool(abs(a - b) < 1e-9)


def write(settings: Settings, results: dict[str, Any], readme: Path) -> None:
    settings.out.mkdir(parents=True, exist_ok=True)
    date = results["date"]
    (settings.out / f"{date}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (settings.out / f"{date}.md").write_text(render(results, ""))
    print(f"[bench] wrote {settings.out / f'{date}.json'} and {date}.md", flush=True)
    if settings.quick:
        print("[bench] quick run: README left alone", flush=True)
    elif results.get("errors") or results["code_changed_during_run"]:
        print("[bench] a part failed or the code changed during the run: README left alone", flush=True)
    elif not {"cold", "floor", "cached"} <= set(settings.parts):
        print("[bench] partial run (needs cold, floor and cached): README left alone", flush=True)
    else:
        image_dir = os.path.relpath(settings.out, readme.parent) + "/"
        update_readme(readme, render(results, image_dir))
        print(f"[bench] updated the Performance section of {readme}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps the log readable
    unwind_on_sigterm()
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="housing-bench-"))
    try:
        settings = settings_from(args, argv, work)
        print(f"[bench] machine: {machine_line(settings.machine)}; parts: {','.join(settings.parts)}", flush=True)
        results = measure(settings)
        write(settings, results, args.readme)
        print(render(results, ""))
        if results["code_changed_during_run"]:
            print("[bench] warning: src/, steps/, config/ or MLproject changed during the run", file=sys.stderr)
    finally:
        if args.keep:
            print(f"[bench] kept {work} (store: {work / 'store'})", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if results.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
