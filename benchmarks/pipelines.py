"""The timed runs: the pipeline cold and fully cached (`mlflow run`), and the compute floor beside it."""

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import figure, say
from benchmarks.processes import burners, run_logged
from benchmarks.settings import BIN, ROOT, Settings

TRIAL_STATES = ("complete", "pruned", "fail")


def pipeline_command(settings: Settings) -> list[str]:
    """As `make pipeline` with STEPS and HYDRA: the default pipeline, every step."""
    command = [str(BIN / "mlflow"), "run", str(ROOT), "--env-manager", "local", "-P", "steps="]
    return [*command, "-P", f"hydra_options={settings.hydra}"]


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
    record: dict[str, Any] = load_dict(f"{run.info.artifact_uri}/pipeline.json")
    for step in record["steps"]:
        info = client.get_run(step["run_id"])
        step["run_s"] = round((info.info.end_time - info.info.start_time) / 1000, 3)
        step["metrics"] = info.data.metrics
    return record


def trials_finished(sweep_metrics: dict[str, float]) -> int:
    """Trials the sweep step finished (complete, pruned or failed), from its run's metrics."""
    return int(sum(sweep_metrics.get(f"trials_{state}", 0) for state in TRIAL_STATES))


def register_cost(wall_s: float | None, run_s: float, metrics: dict[str, float]) -> dict[str, Any]:
    """The register step's seconds, and the split: conversion with parity, profiling, the monitoring reference.

    `wall_s` as the pipeline timed the step (None when not known), `run_s` inside its MLflow run; the
    split from the metrics the step logs (None from a step that predates them).
    """
    return {
        "wall_s": None if wall_s is None else round(wall_s, 2),
        "run_s": round(run_s, 2),
        "compile_s": None if "register_compile_s" not in metrics else round(metrics["register_compile_s"], 2),
        "profile_s": None if "register_profile_s" not in metrics else round(metrics["register_profile_s"], 2),
        "reference_s": None if "register_reference_s" not in metrics else round(metrics["register_reference_s"], 2),
    }


def cold_result(wall: float, record: dict[str, Any]) -> dict[str, Any]:
    """The cold part's figures from its wall time and the pipeline record `latest_pipeline` read."""
    steps = [
        {"step": s["step"], "status": s["status"], "wall_s": s["duration_s"], "run_s": s["run_s"]}
        for s in record["steps"]
    ]
    by_step = {s["step"]: s["metrics"] for s in record["steps"]}
    sweep = by_step.get("sweep", {})
    register = next((s for s in record["steps"] if s["step"] == "register"), None)
    return {
        "wall_s": round(wall, 2),
        "steps": steps,
        "outside_steps_s": round(wall - sum(s["wall_s"] for s in steps), 2),
        "sweep_trials_finished": trials_finished(sweep),
        "sweep_best_cv_wmape": sweep.get("best_cv_wmape"),
        # the registered model's (the best trial's, or the average of `sweep_members` trials)
        "sweep_cv_wmape": sweep.get("cv_wmape"),
        "sweep_members": sweep.get("members"),
        "sweep_grid_cv_wmape": sweep.get("grid_cv_wmape"),
        "test_wmape": by_step.get("register", {}).get("test_wmape"),
        "test_rmse": by_step.get("register", {}).get("test_rmse"),
        "register": None
        if register is None
        else register_cost(register["duration_s"], register["run_s"], by_step["register"]),
    }


def cold(settings: Settings) -> dict[str, Any]:
    """The `cold` part: one timed `mlflow run` on an empty store."""
    if settings.has_store:
        raise RuntimeError(f"{settings.store} already holds a store: the cold run needs an empty one")
    settings.store.mkdir(parents=True, exist_ok=True)
    wall = run_pipeline(settings, settings.work / "cold.log")
    result = cold_result(wall, latest_pipeline(settings))
    figure(settings, "pipeline, cold", f"{wall:.1f} s")
    for s in result["steps"]:
        figure(settings, f"  step {s['step']}", f"{s['wall_s']:.1f} s (inside its run {s['run_s']:.1f} s)")
    return result


BURNERS = 2  # CPU-spinning processes beside the busy run: as many as the machine's cores here


def registered(settings: Settings) -> dict[str, Any]:
    """What a cold run registered (version 1 of an empty store): digest, sweep and test figures, full precision."""
    from mlflow.tracking import MlflowClient

    by_step = {s["step"]: s["metrics"] for s in latest_pipeline(settings)["steps"]}
    version = MlflowClient(settings.tracking_uri).get_model_version(settings.cfg().registry.model_name, "1")
    sweep = by_step["sweep"]
    return {
        "model_sha256": version.tags.get("model.sha256"),
        "sweep_trials": {state: sweep.get(f"trials_{state}") for state in TRIAL_STATES},
        "sweep_best_cv_wmape": sweep.get("best_cv_wmape"),
        "sweep_cv_wmape": sweep.get("cv_wmape"),
        "test": {k: v for k, v in by_step["register"].items() if k.startswith("test_")},
    }


def busy(settings: Settings) -> dict[str, Any]:
    """The `busy` part: the cold run again on a second empty store beside BURNERS spinning processes.

    Same inputs, same seed: the registered model must be the cold part's, digest for digest.
    """
    quiet = registered(settings)
    loaded = dataclasses.replace(settings, store=settings.work / "busy-store")
    loaded.store.mkdir(parents=True)
    with burners(BURNERS):
        wall = run_pipeline(loaded, settings.work / "busy.log")
    result = registered(loaded) | {"wall_s": round(wall, 2), "burners": BURNERS}
    result["same_as_cold"] = {
        key: result[key] == quiet[key]
        for key in ("model_sha256", "sweep_trials", "sweep_best_cv_wmape", "sweep_cv_wmape", "test")
    }
    figure(settings, f"pipeline, cold, beside {BURNERS} CPU burners", f"{wall:.1f} s")
    figure(settings, "  same model as the quiet cold run", str(all(result["same_as_cold"].values())))
    return result


def ensure_store(settings: Settings) -> None:
    """Parts that need a trained champion get one: an untimed pipeline run when the store is empty."""
    if not settings.has_store:
        say("no store yet: one untimed pipeline run first")
        settings.store.mkdir(parents=True, exist_ok=True)
        run_pipeline(settings, settings.work / "setup.log")


def steps_that_ran(record: dict[str, Any]) -> list[str]:
    """The steps of a pipeline record that were not cache hits."""
    return [s["step"] for s in record["steps"] if s["status"] != "cached"]


def cached(settings: Settings) -> dict[str, Any]:
    """The `cached` part: the same `mlflow run` again, every step a cache hit (median of repeats)."""
    ensure_store(settings)
    # untimed first re-run: brings a reused store up to date with the current code and config
    run_pipeline(settings, settings.work / "cached-warmup.log")
    warmup_ran = steps_that_ran(latest_pipeline(settings))
    walls: list[float] = []
    ran: set[str] = set()
    for i in range(settings.cached_repeats):
        walls.append(run_pipeline(settings, settings.work / f"cached-{i}.log"))
        ran |= set(steps_that_ran(latest_pipeline(settings)))
    result = {
        "median_s": round(statistics.median(walls), 2),
        "runs_s": [round(w, 2) for w in walls],
        "fully_cached": not ran,
        "steps_that_ran": sorted(ran),
        "warmup_ran": warmup_ran,
    }
    figure(settings, f"pipeline, fully cached (median of {len(walls)})", f"{result['median_s']:.1f} s")
    if ran:
        # a cache key covers the code: an edit to src/, steps/ or MLproject during the bench re-runs steps
        say(f"warning: the re-runs were not fully cached, {sorted(ran)} ran", warn=True)
    return result


def store_trials(settings: Settings) -> int | None:
    """The pipeline sweep's finished trials, from a reused store (None: use sweep.n_trials)."""
    if not settings.has_store:
        return None
    metrics = {s["step"]: s["metrics"] for s in latest_pipeline(settings)["steps"]}.get("sweep", {})
    return trials_finished(metrics) or None


def run_floor(settings: Settings, trials: int | None) -> dict[str, Any]:
    """The `floor` part: benchmarks/floor.py in a fresh interpreter, timed from outside like the pipeline."""
    out = settings.work / "floor.json"
    command = [sys.executable, "-m", "benchmarks.floor", "--data", str(settings.data), "--json", str(out)]
    command += ["--hydra-options", settings.hydra] + (["--trials", str(trials)] if trials else [])
    started = time.perf_counter()
    code = run_logged(command, settings.work / "floor.log", ROOT, settings.env)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the floor failed (exit {code}): {settings.work / 'floor.log'}")
    result: dict[str, Any] = json.loads(out.read_text())
    result |= {"wall_s": round(wall, 2), "trials_from": "pipeline" if trials else "config"}
    figure(settings, "compute floor", f"{wall:.1f} s ({result['sweep']['trials_finished']} sweep trials)")
    return result
