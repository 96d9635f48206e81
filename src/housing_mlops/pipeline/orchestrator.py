"""The pipeline: one parent MLflow run; each step a child `mlflow.run` or a cache hit."""

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import ExecutionException
from mlflow.tracking import MlflowClient

from housing_mlops.config.schema import Config
from housing_mlops.errors import HousingError
from housing_mlops.pipeline.cache import find_cached, step_key
from housing_mlops.pipeline.composed import handed_to_steps
from housing_mlops.pipeline.dag import STEPS, closure
from housing_mlops.pipeline.locks import process_alive, process_identity, step_claim
from housing_mlops.pipeline.step_server import StepServer
from housing_mlops.pipeline.tracking import ensure_experiment, tracking_uri
from housing_mlops.tags import ERROR_TAG, KEY_TAG, PIPELINE_RUN_TAG, PIPELINE_TAG, PROCESS_TAG, STEP_STATUS_TAG

log = logging.getLogger(__name__)


class StepFailed(HousingError):
    """A step's run ended FAILED; its own error line is in the run's `housing.error` tag."""


@dataclass
class StepRecord:
    """What the pipeline did with one step: ran it or reused a cached run."""

    step: str
    status: str  # "ran" | "cached"
    run_id: str
    duration_s: float


def run_pipeline(cfg: Config, plain: dict[str, Any], hydra_options: str, root: Path) -> list[StepRecord]:
    """Run the configured steps (and missing upstreams) under one parent run."""
    mlflow.set_tracking_uri(tracking_uri(root))
    client = MlflowClient()
    experiment_id = ensure_experiment(client, cfg.tracking.experiment_name)
    records: list[StepRecord] = []
    close_stale_runs(client, experiment_id)
    server = StepServer(root, step_imports())
    with (
        _parent_run(client, experiment_id) as parent,
        contextlib.closing(server),
        handed_to_steps(root, hydra_options, cfg, plain),
    ):
        mlflow.set_tags({PIPELINE_TAG: "true", PROCESS_TAG: process_identity() or "unknown"})
        runs: dict[str, Run] = {}
        try:
            for step in closure(cfg.pipeline.steps):
                record = _run_or_reuse(cfg, plain, hydra_options, root, client, experiment_id, step, runs, server)
                records.append(record)
                runs[step] = client.get_run(record.run_id)
                mlflow.set_tags(
                    {
                        f"{STEP_STATUS_TAG}{step}": record.status,
                        f"{STEP_STATUS_TAG}{step}.run_id": record.run_id,
                    }
                )
        finally:
            try:
                mlflow.log_dict(
                    {"parent_run_id": parent.info.run_id, "steps": [asdict(r) for r in records]},
                    "pipeline.json",
                )
            except OSError as exc:  # a full or read-only artifact store must not hide why a step failed
                log.warning(f"could not log pipeline.json: {exc}")
    return records


def step_imports() -> list[str]:
    """What the step server imports once for every step: the SQL stores and the steps' modules.

    In the order the steps come, and register's two heaviest imports apart (1.6 and 0.9 s of its
    2.9 s, measured): a launcher that comes mid-import waits for that one import to end.
    """
    stores = ["mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"]
    apart = {"register": ("skops.io", "onnx")}
    return [*stores, *(module for name in STEPS for module in (*apart.get(name, ()), f"steps.{name}"))]


def close_stale_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the runs a killed pipeline left RUNNING.

    These are its parent run, its step runs and their nested runs, and its `mlflow run` launcher
    run.

    Only pipelines whose driving process is known to be gone are touched (same machine and
    container, see `locks.process_alive`): a pipeline running concurrently, or one on
    another machine, is left alone. A stale run never counted as a cache hit (only FINISHED
    runs do); this keeps the store honest and lets `register` clean up after a killed run.
    """
    running = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000)
    dead = [
        r.info.run_id
        for r in running
        if r.data.tags.get(PIPELINE_TAG) == "true" and process_alive(r.data.tags.get(PROCESS_TAG)) is False
    ]
    if not dead:
        return []
    children: dict[str, list[str]] = {}
    for run in running:
        children.setdefault(run.data.tags.get("mlflow.parentRunId", ""), []).append(run.info.run_id)
    stale: list[str] = []  # parents before their children
    stack = list(dead)
    while stack:
        run_id = stack.pop()
        if run_id not in stale:
            stale.append(run_id)
            stack.extend(children.get(run_id, []))
    experiments = [e.experiment_id for e in client.search_experiments()]
    for pipeline in dead:
        launchers = client.search_runs(
            experiments,
            filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{pipeline}' and attributes.status = 'RUNNING'",
        )
        stale.extend(r.info.run_id for r in launchers if r.info.run_id not in stale)
    for run_id in reversed(stale):  # children first: an interrupted clean-up finds the parent again
        client.set_tag(run_id, ERROR_TAG, "interrupted: the pipeline process that ran it is gone")
        client.set_terminated(run_id, "KILLED")
    log.warning(f"marked {len(stale)} run(s) of {len(dead)} interrupted pipeline(s) KILLED")
    return stale


def _run_or_reuse(
    cfg: Config,
    plain: dict[str, Any],
    hydra_options: str,
    root: Path,
    client: MlflowClient,
    experiment_id: str,
    step: str,
    runs: dict[str, Run],
    server: StepServer,
) -> StepRecord:
    upstream = {name: runs[name] for name in STEPS[step].upstream}
    key = step_key(plain, step, upstream, root)
    reusable = step not in cfg.pipeline.force and (cfg.pipeline.cache or step not in cfg.pipeline.steps)
    cached = find_cached(client, experiment_id, step, key) if reusable else None
    if cached is not None:
        log.info(f"cached: reusing run {cached.info.run_id}", extra={"step": step})
        return StepRecord(step, "cached", cached.info.run_id, 0.0)
    if STEPS[step].builds_models:
        cfg.models.check_estimators()  # a bad class fails here, before its step starts
    if cfg.pipeline.step_server:
        server.start()
    # one pipeline at a time runs a step with given inputs; the others wait and reuse its run
    with step_claim(root, client, step, key, cfg.pipeline.claim_heartbeat_s):
        cached = find_cached(client, experiment_id, step, key) if reusable else None
        if cached is not None:
            log.info(f"cached: reusing run {cached.info.run_id} of a concurrent pipeline", extra={"step": step})
            return StepRecord(step, "cached", cached.info.run_id, 0.0)
        return _run(hydra_options, root, client, experiment_id, step, upstream, key)


def _run(
    hydra_options: str,
    root: Path,
    client: MlflowClient,
    experiment_id: str,
    step: str,
    upstream: dict[str, Run],
    key: str,
) -> StepRecord:
    log.info("running", extra={"step": step})
    started = time.perf_counter()
    try:
        mlflow.run(
            str(root),
            entry_point=step,
            parameters={
                "hydra_options": hydra_options,
                "upstream": ",".join(f"{n}={r.info.run_id}" for n, r in upstream.items()),
            },
            env_manager="local",
            experiment_id=experiment_id,
            run_name=step,
        )
        failed = False
    except ExecutionException:
        failed = True
    duration = time.perf_counter() - started
    run = _latest_child(client, experiment_id, step)
    if failed:
        reason = run.data.tags.get(ERROR_TAG, "see the step's output above")
        raise StepFailed(f"step '{step}' failed (run {run.info.run_id}): {reason}")
    if run.data.tags.get(KEY_TAG) != key:
        raise StepFailed(f"step '{step}' (run {run.info.run_id}) recorded a different cache key")
    log.info(f"ran in {duration:.1f} s: run {run.info.run_id}", extra={"step": step})
    return StepRecord(step, "ran", run.info.run_id, round(duration, 3))


def _latest_child(client: MlflowClient, experiment_id: str, step: str) -> Run:
    """The step run `mlflow.run` just made under the active parent run."""
    parent = mlflow.active_run()
    assert parent is not None
    return client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.`mlflow.project.entryPoint` = '{step}'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )[0]


def _parent_run(client: MlflowClient, experiment_id: str) -> mlflow.ActiveRun:
    """The `mlflow run` launcher's run when it is in the configured experiment, else a new one.

    `mlflow run .` without --experiment-name puts its run in the Default experiment; the
    pipeline still lives in the configured one, and the launcher run points at it.
    """
    launched = os.environ.get("MLFLOW_RUN_ID")
    if launched and client.get_run(launched).info.experiment_id == experiment_id:
        return mlflow.start_run(run_id=launched)
    if launched:
        del os.environ["MLFLOW_RUN_ID"]
    active = mlflow.start_run(experiment_id=experiment_id, run_name="pipeline")
    if launched:
        client.set_tag(launched, PIPELINE_RUN_TAG, active.info.run_id)
        # expected with a bare `mlflow run .` (the launcher's run lands in Default): say where to look
        log.info(
            f"pipeline run {active.info.run_id} in experiment {experiment_id}; "
            f"launcher run {launched} links to it ({PIPELINE_RUN_TAG})"
        )
    return active
