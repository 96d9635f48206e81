"""The `serving` part: the champion's single-row latency and 1,000-row throughput, in-process and over HTTP."""

import dataclasses
import http.client
import json
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import floor
from benchmarks.machine import figure
from benchmarks.pipelines import ensure_store
from benchmarks.processes import stop
from benchmarks.report import latency_text
from benchmarks.settings import BIN, Settings
from housing_mlops.registry import hardware


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of latencies in milliseconds, rounded to the microsecond."""
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def serving_rows(settings: Settings) -> pd.DataFrame:
    """Feature rows as the model's signature has them (validated and coerced like ingest)."""
    cfg = settings.cfg()
    rows: pd.DataFrame = floor.ingest(cfg, settings.data)[cfg.data.features()]
    return rows


def serving(settings: Settings) -> dict[str, Any]:
    """The champion of the bench's store, timed in-process (`mlflow.pyfunc`) and over `mlflow models serve`."""
    import mlflow

    ensure_store(settings)
    cfg = settings.cfg()
    uri = f"models:/{cfg.registry.model_name}@champion"
    mlflow.set_tracking_uri(settings.tracking_uri)
    rows = serving_rows(settings)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(settings.work / "champion")))
    # the same measurement register records on the version (hardware.*), on 1 thread: about
    # latency_calls single rows in batch_repeats repeats, and batch_repeats 1,000-row calls
    calls = dataclasses.replace(
        cfg.deployment.profile,
        repeats=settings.batch_repeats,
        calls=max(10, settings.latency_calls // settings.batch_repeats),
        batch_sizes=[1, 1000],
    )
    profile = hardware.profile_variant(
        lambda n: hardware.ThreadLimited(mlflow.pyfunc.load_model(str(local)), n), rows, [1], local, calls
    )
    one = profile["threads"]["1"]
    in_process = {
        "p50_ms": one["single_row"]["wall_p50_ms"],
        "p95_ms": one["single_row"]["wall_p95_ms"],
        "p99_ms": one["single_row"]["wall_p99_ms"],
        "cpu_p95_ms": profile["cpu_p95_ms"],
        "batch_rows_per_s": one["batches"]["1000"]["rows_per_s"],
        "load_s": one["load_s"],
        "size_mb": profile["size_mb"],
    }
    figure(settings, "serving in-process p50/p95/p99", latency_text(in_process))
    figure(settings, "serving in-process batch", f"{in_process['batch_rows_per_s']:,.0f} rows/s")
    over_http = http_serving(settings, uri, rows.dropna())  # JSON has no NaN
    figure(settings, "serving HTTP p50/p95/p99", latency_text(over_http))
    figure(settings, "serving HTTP batch", f"{over_http['batch_rows_per_s']:,.0f} rows/s")
    return {"model_uri": uri, "calls": settings.latency_calls, "in_process": in_process, "http": over_http}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_serving(settings: Settings, uri: str, rows: pd.DataFrame) -> dict[str, Any]:
    """Start `mlflow models serve` on `uri`, time it once it answers /ping, and stop it."""
    port = free_port()
    env = settings.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with (settings.work / "serve.log").open("w") as log:
        # own session: stopping it stops the workers it forks, and nothing else
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            startup = wait_for_ping(server, port, timeout_s=180.0)
            result = time_http(port, rows, settings.latency_calls, settings.batch_repeats)
            return result | {"startup_s": round(startup, 2), "port": port}
        finally:
            stop(server)


def wait_for_ping(server: subprocess.Popen[bytes], port: int, timeout_s: float) -> float:
    """Seconds until the server answers /ping with 200; raises if it exits or times out first."""
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


def payload(frame: pd.DataFrame) -> bytes:
    """The /invocations body for `frame`: MLflow's `dataframe_split` JSON."""
    return json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()


def time_http(port: int, rows: pd.DataFrame, calls: int, repeats: int) -> dict[str, Any]:
    """Single-row and 1,000-row POSTs to /invocations over one keep-alive connection.

    A client reusing its connection, as an HTTP client library does.
    """
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
