"""The step runner: every script in steps/ is one `run_step(name, body, root)` call.

It owns what all steps share: config, the MLflow run, upstream resolution, the step hooks,
and turning a HousingError into one line on stderr and a FAILED run.
"""

import argparse
import errno
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.errors import HousingError, StorageError, UpstreamError
from housing_mlops.pipeline import hooks, logs
from housing_mlops.pipeline.cache import find_cached, step_key
from housing_mlops.pipeline.composed import config_for
from housing_mlops.pipeline.context import StepContext
from housing_mlops.pipeline.dag import STEPS, closure
from housing_mlops.pipeline.hooks import StepHook
from housing_mlops.pipeline.tracking import ensure_experiment, tracking_uri
from housing_mlops.tags import ERROR_TAG, KEY_TAG, STEP_TAG, UPSTREAM_TAG

__all__ = ["StepContext", "run_step"]

log = logging.getLogger(__name__)

_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


def run_step(
    name: str,
    body: Callable[[StepContext], None],
    root: Path,
    argv: list[str] | None = None,
    step_hooks: Sequence[StepHook] | None = None,
) -> int:
    """Run one step of the project at `root` as an MLflow run; return the exit code.

    `step_hooks` run after the body (default: those the installed plugins enable, see `hooks`).
    """
    parser = argparse.ArgumentParser(prog=f"steps/{name}.py")
    parser.add_argument("--hydra-options", default="")
    parser.add_argument("--upstream", default="", help="step=run_id,... (default: from the cache)")
    args = parser.parse_args(argv)
    logs.configure(name)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    launched = os.environ.get("MLFLOW_RUN_ID")
    try:
        cfg, plain = config_for(root, args.hydra_options, estimators=STEPS[name].builds_models)
        after = hooks.load(cfg) if step_hooks is None else list(step_hooks)
        mlflow.set_tracking_uri(tracking_uri(root))
        client = MlflowClient()
        experiment_id = ensure_experiment(client, cfg.tracking.experiment_name)
        upstream = _upstream(client, experiment_id, plain, name, args.upstream, root)
        key = step_key(plain, name, upstream, root)
        # under `mlflow run`, the launcher's run (MLFLOW_RUN_ID) is this step's run
        active = mlflow.start_run() if launched else mlflow.start_run(experiment_id=experiment_id, run_name=name)
        with active as run, tempfile.TemporaryDirectory() as tmp:
            mlflow.set_tags(
                {
                    STEP_TAG: name,
                    KEY_TAG: key,
                    **{f"{UPSTREAM_TAG}{s}": r.info.run_id for s, r in upstream.items()},
                }
            )
            ctx = StepContext(
                name, cfg, plain, root, Path(tmp), upstream, client, run.info.run_id, run.info.experiment_id, key
            )
            try:
                _call(body, ctx)
            except Exception as exc:
                error = str(exc) if isinstance(exc, HousingError) else f"{type(exc).__name__}: {exc}"
                if isinstance(exc, HousingError):
                    mlflow.set_tag(ERROR_TAG, error[:5000])
                hooks.notify(after, ctx, error)
                raise
            hooks.notify(after, ctx, None)
    except HousingError as exc:
        if launched and not mlflow.active_run():
            MlflowClient().set_tag(launched, ERROR_TAG, str(exc)[:5000])
        log.error(str(exc))
        return 1
    return 0


def _call(body: Callable[[StepContext], None], ctx: StepContext) -> None:
    try:
        body(ctx)
    except OSError as exc:
        if exc.errno not in _DISK_ERRORS:
            raise
        # a full or read-only disk is the user's to fix: one line naming the path, no traceback
        where = exc.filename or "a step output"
        raise StorageError(f"could not write {where}: {exc.strerror or exc}; free space or fix permissions") from exc


def _upstream(
    client: MlflowClient,
    experiment_id: str,
    plain: dict[str, Any],
    name: str,
    given: str,
    root: Path,
) -> dict[str, Run]:
    """Upstream runs named by the orchestrator, or else the newest cache-valid ones."""
    if given:
        pairs = dict(item.split("=", 1) for item in given.split(","))
        runs = {step: client.get_run(run_id) for step, run_id in pairs.items()}
        missing = set(STEPS[name].upstream) - runs.keys()
        if missing:
            raise UpstreamError(f"--upstream lacks {sorted(missing)} for step '{name}'")
        return runs
    runs = {}
    for step in closure(list(STEPS[name].upstream)):
        run = find_cached(client, experiment_id, step, step_key(plain, step, runs, root))
        if run is None:
            raise UpstreamError(
                f"no finished '{step}' run matches the current config and code; run "
                f"`mlflow run . --env-manager local -P steps={step}` first"
            )
        runs[step] = run
    return runs
