"""The optional W&B mirror: every step run, and every finished sweep trial, copied to a W&B run.

Each W&B run is in the group of its pipeline run, with the step's digested outputs as a W&B artifact.

One-way and never a dependency: steps read nothing back from W&B, a W&B error is one warning
on stderr (the step still finishes), and with `wandb.mode: disabled` wandb is not imported.
`wandb.init(mode=...)` outranks the WANDB_MODE variable, so the config decides the mode.
The step runner finds `step_hook` through the `housing_mlops.step_hooks` entry point.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from mlflow.entities import Run

from housing_mlops.config.schema import Config, WandbConfig
from housing_mlops.data.source import sha256_file
from housing_mlops.pipeline import tracking
from housing_mlops.pipeline.context import StepContext
from housing_mlops.pipeline.dag import STEPS
from housing_mlops.pipeline.hooks import StepHook
from housing_mlops.tags import (
    KEY_TAG,
    TRIAL_REPORTED_METRIC,
    UPSTREAM_TAG,
    WANDB_DIR_TAG,
    WANDB_RUN_TAG,
    WANDB_URL_TAG,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial

TRIAL_JOB = "sweep-trial"
ARTIFACT_TYPE = "step-outputs"
_TRIAL_EXIT = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 1}  # finished Optuna states -> W&B exit code


@dataclass(frozen=True)
class RunSpec:
    """One W&B run to write, decided entirely before wandb is imported."""

    id: str
    name: str
    job_type: str
    group: str
    config: dict[str, Any]
    summary: dict[str, Any]
    failed: bool = False
    notes: str | None = None
    artifact: str | None = None  # artifact name; None or no files = no artifact
    files: dict[str, Path] = field(default_factory=dict)  # name in the artifact -> file
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """A W&B run as written: where it lives and, online, its page."""

    path: str  # [entity/]project/run_id
    dir: str  # local run folder (what `wandb sync` uploads)
    url: str | None  # online only


def group_of(run: Run) -> str:
    """The pipeline run id of a step run; a step run alone is its own group."""
    return run.data.tags.get("mlflow.parentRunId") or run.info.run_id


def jsonable(value: Any) -> Any:
    """Config values W&B stores as strict JSON: a non-finite float becomes its string."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def step_spec(step: str, run: Run, plain: Mapping[str, Any], outputs: Path, error: str | None) -> RunSpec:
    """The W&B run of a step: config sections, upstream runs, metrics, digested outputs.

    A failed step's run carries its error (notes, exit code 1) but no artifact, so
    `<step>-outputs:latest` is always the output of a finished step.
    """
    tags = run.data.tags
    upstream = {k.removeprefix(UPSTREAM_TAG): v for k, v in tags.items() if k.startswith(UPSTREAM_TAG)}
    config = {
        "step": step,
        **{section: plain[section] for section in STEPS[step].config},
        "upstream": dict(sorted(upstream.items())),
        "mlflow": {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "cache_key": tags.get(KEY_TAG),
        },
        "params": dict(run.data.params),
    }
    digests = tracking.digests(run)
    files = {}
    if error is None:
        files = {
            name: outputs / name
            for name in sorted(digests)
            if (outputs / name).is_file() and sha256_file(outputs / name) == digests[name]
        }
    return RunSpec(
        id=run.info.run_id,
        name=step,
        job_type=step,
        group=group_of(run),
        config=jsonable(config),
        summary=dict(run.data.metrics),
        failed=error is not None,
        notes=error,
        artifact=f"{step}-outputs",
        files=files,
        metadata={"mlflow_run_id": run.info.run_id, "sha256": {name: digests[name] for name in files}},
    )


def trial_specs(trials: Iterable[FrozenTrial], group: str, sweep_run_id: str, study_name: str) -> list[RunSpec]:
    """One W&B run per finished trial (complete, pruned, failed), as the sweep logs it to MLflow."""
    specs = []
    for trial in trials:
        state = trial.state.name
        if state not in _TRIAL_EXIT:
            continue
        summary: dict[str, Any] = {
            k: float(v) for k, v in trial.user_attrs.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if state == "COMPLETE" and trial.value is not None:
            summary["cv_wmape"] = float(trial.value)
        if trial.duration is not None:
            summary["duration_s"] = trial.duration.total_seconds()
        if trial.intermediate_values:  # MLflow's latest value of the curve: the one at the last step
            summary[TRIAL_REPORTED_METRIC] = float(trial.intermediate_values[max(trial.intermediate_values)])
        summary["state"] = state
        reason = trial.system_attrs.get("fail_reason") if state == "FAIL" else None
        specs.append(
            RunSpec(
                id=f"{sweep_run_id}-trial-{trial.number:03d}",
                name=f"trial-{trial.number:03d}",
                job_type=TRIAL_JOB,
                group=group,
                config=jsonable(
                    {
                        **trial.params,
                        "optuna": {"study": study_name, "trial": trial.number, "sweep_run_id": sweep_run_id},
                    }
                ),
                summary=summary,
                failed=state == "FAIL",
                notes=str(reason)[:5000] if reason else None,
            )
        )
    return specs


def publish(cfg: WandbConfig, specs: list[RunSpec], what: str) -> list[Published]:
    """Write each spec as a W&B run.

    Any W&B error is one warning on stderr and ends the mirroring (later specs are skipped rather
    than each waiting on the same failure).
    """
    if cfg.mode == "disabled" or not specs:
        return []
    done: list[Published] = []
    try:
        import wandb

        if cfg.dir:
            Path(cfg.dir).mkdir(parents=True, exist_ok=True)
        # the mirror starts after the step's work: nothing to capture, sample or snapshot
        settings = wandb.Settings(
            silent=True,
            console="off",
            save_code=False,
            disable_git=True,
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
        )
        for spec in specs:
            run = wandb.init(
                mode=cast("Literal['online', 'offline']", cfg.mode),  # WandbConfig.validate allows only these here
                project=cfg.project,
                entity=cfg.entity,
                dir=cfg.dir,
                id=spec.id,
                name=spec.name,
                group=spec.group,
                job_type=spec.job_type,
                config=spec.config,
                notes=spec.notes,
                settings=settings,
            )
            try:
                run.summary.update(spec.summary)
                if spec.artifact and spec.files:
                    artifact = wandb.Artifact(spec.artifact, type=ARTIFACT_TYPE, metadata=spec.metadata)
                    for name, path in spec.files.items():
                        artifact.add_file(str(path), name=name)
                    run.log_artifact(artifact)
                published = Published(run.path, run.settings.sync_dir, run.url if cfg.mode == "online" else None)
            finally:
                run.finish(exit_code=1 if spec.failed else 0)
            done.append(published)
    except Exception as exc:
        log.warning(
            f"W&B mirror of {what} failed after {len(done)} of {len(specs)} run(s) "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); "
            "MLflow holds the complete record"
        )
    finally:
        if "wandb" in sys.modules:
            with contextlib.suppress(Exception):  # the service is gone already: nothing to flush
                sys.modules["wandb"].teardown()
    return done


def step_hook(cfg: Config) -> StepHook | None:
    """The runner's hook (entry point `wandb`): `mirror_step`, or None when the mirror is disabled."""
    return None if cfg.wandb.mode == "disabled" else mirror_step


def mirror_step(ctx: StepContext, error: str | None) -> None:
    """Mirror the step run of `ctx` (finished, or failed with `error`) and tag it with the W&B run."""
    cfg = ctx.cfg.wandb
    if cfg.mode == "disabled":
        return
    started = time.perf_counter()
    try:
        spec = step_spec(ctx.name, ctx.client.get_run(ctx.run_id), ctx.plain, ctx.workdir / "outputs", error)
    except Exception as exc:  # MLflow unreachable: the step's own outcome stands
        log.warning(f"W&B mirror of step '{ctx.name}' skipped: {exc}")
        return
    for run in publish(cfg, [spec], f"step '{ctx.name}'"):
        tags = {WANDB_RUN_TAG: run.path, **({WANDB_URL_TAG: run.url} if run.url else {WANDB_DIR_TAG: run.dir})}
        try:
            for key, value in tags.items():
                ctx.client.set_tag(ctx.run_id, key, value)
        except Exception as exc:
            log.warning(f"could not tag run {ctx.run_id} with its W&B run: {exc}")
        where = run.url or f"upload it with `wandb sync {run.dir}`"
        log.info(f"W&B {cfg.mode} run {run.path} in {time.perf_counter() - started:.1f} s: {where}")


def mirror_trials(ctx: StepContext, study: Study) -> None:
    """Mirror every finished trial of `study` (this run's, a resumed run's, every worker's)."""
    cfg = ctx.cfg.wandb
    if cfg.mode == "disabled":
        return
    started = time.perf_counter()
    try:
        group = group_of(ctx.client.get_run(ctx.run_id))
    except Exception as exc:
        log.warning(f"W&B mirror of the sweep trials skipped: {exc}")
        return
    specs = trial_specs(study.get_trials(deepcopy=False), group, ctx.run_id, study.study_name)
    runs = publish(cfg, specs, "the sweep trials")
    if runs:
        elapsed = time.perf_counter() - started
        log.info(f"W&B {cfg.mode}: {len(runs)} trial runs in group {group} in {elapsed:.1f} s")
