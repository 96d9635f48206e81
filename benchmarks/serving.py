"""The `serving` part: the champion's two serving variants side by side, on one thread, in one run.

For each variant, the compiled ONNX graph (when the version has one) and the sklearn Pipeline:
  runtime  its own runtime on raw frames, no MLflow around it: ONNX Runtime with one intra-op
           thread (CompiledModel), the Pipeline under ThreadLimited(..., 1); single rows and a
           10,000-row batch, measured by hardware.profile_variant (warm-up, repeats, medians)
  pyfunc   `mlflow.pyfunc.load_model` of a model folder (signature enforcement included): the
           champion's own folder for the variant it serves, and a local copy whose serving.json
           names the other variant (the loader then serves model.skops); single rows, 1,000 rows
  http     `mlflow models serve` of the same folder (native thread pools pinned to one thread):
           single rows and 1,000-row batches over one keep-alive connection
Then, for the compiled graph, its time per Pipeline stage (benchmarks/graph_profile.py); parity, as
the version's tag says and recomputed on the sealed test set (the split run's test.parquet); and the
cost of the register run that registered the champion. Every block records the 1-minute load
average it ran under.
"""

import dataclasses
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import floor
from benchmarks.graph_profile import one_row_split, profile_graph
from benchmarks.machine import figure
from benchmarks.pipelines import ensure_store, register_cost
from benchmarks.processes import stop
from benchmarks.report import latency_text
from benchmarks.settings import BIN, Settings
from housing_mlops.config.registry import ProfileConfig
from housing_mlops.modeling.metrics import rmse, wmape
from housing_mlops.registry import hardware
from housing_mlops.serving import loader
from housing_mlops.serving.variants import ONNX, SKLEARN

RUNTIME_BATCH, SERVING_BATCH = 10_000, 1_000
PARITY_TAG = "serving.parity_max_rel_error"
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def percentiles(ms: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of latencies in milliseconds, rounded to the microsecond."""
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def serving_rows(settings: Settings) -> pd.DataFrame:
    """Feature rows as the model's signature has them (validated and coerced like ingest)."""
    cfg = settings.cfg()
    rows: pd.DataFrame = floor.ingest(cfg, settings.data)[cfg.data.features()]
    return rows


def load_avg() -> float:
    """The 1-minute load average now."""
    return round(os.getloadavg()[0], 2)


def profile_settings(profile: ProfileConfig, settings: Settings, batch: int) -> ProfileConfig:
    """The register step's measurement, sized by the bench: ~latency_calls single rows, one batch size."""
    calls = max(10, settings.latency_calls // settings.batch_repeats)
    return dataclasses.replace(profile, repeats=settings.batch_repeats, calls=calls, batch_sizes=[1, batch])


def profiled(profile: dict[str, Any], batch: int) -> dict[str, Any]:
    """The figures the report shows from one hardware.profile_variant result (its 1-thread part)."""
    one = profile["threads"]["1"]
    single, timed = one["single_row"], one["batches"][str(batch)]
    return {
        **{f"p{q}_ms": single[f"wall_p{q}_ms"] for q in (50, 95, 99)},
        **{f"cpu_p{q}_ms": single[f"cpu_p{q}_ms"] for q in (50, 95, 99)},
        "batch_rows": batch,
        "batch_ms": timed["wall_ms"],
        "batch_rows_per_s": timed["rows_per_s"],
        "batch_cpu_rows_per_s": timed["cpu_rows_per_s"],
        "load_s": one["load_s"],
        "size_mb": profile["size_mb"],
        "load_avg_1m": [profile["load_avg_1m_before"], profile["load_avg_1m_after"]],
    }


def sklearn_copy(folder: Path, dst: Path) -> Path:
    """A copy of the model folder whose serving.json says the sklearn variant (the loader serves model.skops)."""
    shutil.copytree(folder, dst)
    info_file = dst / "serving" / loader.INFO
    info = json.loads(info_file.read_text())
    info_file.write_text(json.dumps(info | {"variant": SKLEARN}, indent=2))
    (dst / "serving" / loader.GRAPH).unlink(missing_ok=True)  # what the loader reads is model.skops alone
    return dst


def runtimes(folder: Path) -> dict[str, tuple[Callable[[int], hardware.Predictor], Path]]:
    """Each variant's own runtime, `load(n)` on n threads, and its artifact; the ONNX one if the folder has a graph."""
    import skops.io

    from housing_mlops.serving.runtime import CompiledModel

    info = json.loads((folder / "serving" / loader.INFO).read_text())
    skops_file = folder / loader.SKLEARN_FILE
    found: dict[str, tuple[Callable[[int], hardware.Predictor], Path]] = {}
    graph = folder / "serving" / loader.GRAPH
    if graph.is_file():
        found[ONNX] = (lambda n: CompiledModel(graph.read_bytes(), n, info["chunk_rows"]), graph)
    found[SKLEARN] = (
        lambda n: hardware.ThreadLimited(skops.io.load(skops_file, trusted=info["trusted_types"]), n),
        skops_file,
    )
    return found


def parity_figures(y: np.ndarray, predicted: dict[str, np.ndarray], tagged: float | None) -> dict[str, Any]:
    """Max relative error of the compiled predictions against sklearn's, and each variant's test wMAPE and RMSE."""
    scores = {v: {"wmape": wmape(y, p), "rmse": rmse(y, p)} for v, p in predicted.items()}
    result: dict[str, Any] = {"rows": len(y), "tagged_max_rel_error": tagged, "scores": scores}
    if ONNX in predicted:
        want, got = predicted[SKLEARN], predicted[ONNX]
        error = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(np.float64).tiny)
        result["max_rel_error"] = float(error.max(initial=0.0))
        result["nan"] = int(np.isnan(got).sum())
        result["equal_4dp"] = {k: round(scores[ONNX][k], 4) == round(scores[SKLEARN][k], 4) for k in ("wmape", "rmse")}
    return result


def sealed_test(client: Any, cfg: Any, version: str, work: Path) -> pd.DataFrame:
    """The split step's test.parquet of the pipeline that registered `version`."""
    from housing_mlops.registry import store

    split_run = store.sealed_test_run(client, cfg.registry.model_name, version)
    return pd.read_parquet(client.download_artifacts(split_run, "test.parquet", str(work)))


def variant_figures(
    settings: Settings,
    rows: pd.DataFrame,
    variant: str,
    load: Callable[[int], hardware.Predictor],
    artifact: Path,
    folder: Path,
    uri: str | None,
) -> dict[str, Any]:
    """One variant on one thread: its own runtime `load`, `mlflow.pyfunc` of `folder`, HTTP of `uri` (or `folder`)."""
    import mlflow

    profile = settings.cfg().deployment.profile
    own = profile_settings(profile, settings, RUNTIME_BATCH)
    runtime = profiled(hardware.profile_variant(load, rows, [1], artifact, own), RUNTIME_BATCH)
    figure(settings, f"{variant} runtime, 1 row p50/p95/p99", latency_text(runtime))
    figure(settings, f"{variant} runtime, {RUNTIME_BATCH:,} rows", f"{runtime['batch_rows_per_s']:,.0f} rows/s")

    def pyfunc_model(n: int) -> hardware.Predictor:
        return hardware.ThreadLimited(mlflow.pyfunc.load_model(str(folder)), n)

    calls = profile_settings(profile, settings, SERVING_BATCH)
    pyfunc = profiled(hardware.profile_variant(pyfunc_model, rows, [1], folder, calls), SERVING_BATCH)
    figure(settings, f"{variant} mlflow.pyfunc, 1 row p50/p95/p99", latency_text(pyfunc))
    over_http = http_serving(settings, uri or str(folder), rows.dropna(), f"serve-{variant}.log")  # JSON has no NaN
    figure(settings, f"{variant} HTTP, 1 row p50/p95/p99", latency_text(over_http))
    return {"runtime": runtime, "pyfunc": pyfunc, "http": over_http}


def graph_figures(settings: Settings, folder: Path, rows: pd.DataFrame) -> dict[str, Any]:
    """The compiled graph of the model `folder`, split per stage on the big batch, and one row without the profiler."""
    graph = (folder / "serving" / loader.GRAPH).read_bytes()
    chunk_rows = json.loads((folder / "serving" / loader.INFO).read_text())["chunk_rows"]
    big = rows.sample(RUNTIME_BATCH, replace=True, random_state=0)
    picked = rows.sample(settings.latency_calls, replace=True, random_state=0)
    return {
        "one_row": one_row_split(graph, chunk_rows, [picked.iloc[[i]] for i in range(len(picked))]),
        "batch": profile_graph(graph, chunk_rows, big, settings.batch_repeats),
    }


def serving(settings: Settings) -> dict[str, Any]:
    """Both variants of the bench store's champion: own runtime, `mlflow.pyfunc`, HTTP, parity, register cost."""
    import mlflow
    from mlflow.tracking import MlflowClient

    ensure_store(settings)
    cfg = settings.cfg()
    name = cfg.registry.model_name
    uri = f"models:/{name}@champion"
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias(name, "champion")
    start_load = load_avg()
    rows = serving_rows(settings)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(settings.work / "champion")))
    served = json.loads((local / "serving" / loader.INFO).read_text())["variant"]
    folders = {served: local}
    if served != SKLEARN:
        folders[SKLEARN] = sklearn_copy(local, settings.work / "champion-sklearn")
    found = runtimes(local)
    figures = {
        variant: variant_figures(
            settings, rows, variant, load, artifact, folders[variant], uri if variant == served else None
        )
        for variant, (load, artifact) in found.items()
    }
    if ONNX in figures:  # which stage of the graph costs what, on one row and on the big batch
        figures[ONNX]["graph_profile"] = graph_figures(settings, local, rows)
    test = sealed_test(client, cfg, version.version, settings.work)
    X, y = test[cfg.data.features()], test[cfg.data.target].to_numpy(np.float64)
    predicted = {v: np.asarray(load(1).predict(X), dtype=np.float64).reshape(-1) for v, (load, _) in found.items()}
    tagged = version.tags.get(PARITY_TAG)
    parity = parity_figures(y, predicted, None if tagged is None else float(tagged))
    if "max_rel_error" in parity:
        figure(settings, "parity, max relative error on the test set", f"{parity['max_rel_error']:.3g}")
    run = client.get_run(str(version.run_id))
    register = register_cost(None, (run.info.end_time - run.info.start_time) / 1000, run.data.metrics)
    return {
        "model_uri": uri,
        "version": str(version.version),
        "served": served,
        "calls": settings.latency_calls,
        "repeats": settings.batch_repeats,
        "variants": figures,
        "parity": parity,
        "register": register,
        "load_avg_1m": [start_load, load_avg()],
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_serving(settings: Settings, model: str, rows: pd.DataFrame, log_name: str = "serve.log") -> dict[str, Any]:
    """Start `mlflow models serve -m model` (one native thread), time it once it answers /ping, and stop it."""
    port = free_port()
    env = settings.env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"} | ONE_THREAD
    command = [str(BIN / "mlflow"), "models", "serve", "-m", model, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with (settings.work / log_name).open("w") as log:
        # own session: stopping it stops the workers it forks, and nothing else
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            startup = wait_for_ping(server, port, timeout_s=180.0)
            before = load_avg()
            result = time_http(port, rows, settings.latency_calls, settings.batch_repeats)
            return result | {"startup_s": round(startup, 2), "port": port, "load_avg_1m": [before, load_avg()]}
        finally:
            stop(server)


def wait_for_ping(server: subprocess.Popen[bytes], port: int, timeout_s: float) -> float:
    """Seconds until the server answers /ping with 200; raises if it exits or times out first."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"`mlflow models serve` exited with {server.returncode}; see its serve log")
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
    batch = payload(rows.sample(SERVING_BATCH, replace=len(rows) < SERVING_BATCH, random_state=0))
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
        post(batch)
        batch_ms = [post(batch) * 1000 for _ in range(repeats)]
    finally:
        connection.close()
    batch_figures = {f"batch_{k}": v for k, v in percentiles(batch_ms).items()}
    rate = round(SERVING_BATCH * 1000 / statistics.median(batch_ms), 1)
    return percentiles(latencies) | batch_figures | {"batch_rows": SERVING_BATCH, "batch_rows_per_s": rate}
