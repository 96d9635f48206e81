"""The step runner: every script in steps/ is one `run_step(name, body)` call.

It owns what all steps share: config, the MLflow run, upstream resolution, versioned inputs
and outputs, and turning a HousingError into one line on stderr and a FAILED run.
"""

import argparse
import errno
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config
from housing_mlops.data.source import sha256_file
from housing_mlops.errors import HousingError, SealedTestSetError, StorageError, UpstreamError
from housing_mlops.integrations import wandb_mirror as mirror
from housing_mlops.pipeline import logs, tracking
from housing_mlops.pipeline.dag import STEPS, closure
from housing_mlops.tags import DIGEST_TAG, ERROR_TAG, KEY_TAG, STEP_TAG, UPSTREAM_TAG

log = logging.getLogger(__name__)

_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
SEALED = {"test.parquet": "register"}  # artifact -> the only pipeline step allowed to open it


@dataclass
class StepContext:
    name: str
    cfg: Config
    plain: dict[str, Any]
    root: Path
    workdir: Path
    upstream: dict[str, Run]
    client: MlflowClient
    run_id: str
    experiment_id: str
    key: str
    warnings: list[str] = field(default_factory=list)

    def input(self, step: str, artifact: str) -> Path:
        """Download `artifact` from the upstream `step` run and check it against its digest."""
        if SEALED.get(artifact, self.name) != self.name:
            raise SealedTestSetError(
                f"step '{self.name}' tried to open {artifact}: the test set is sealed until "
                f"'{SEALED[artifact]}'; fit and select with cross-validation on train.parquet"
            )
        run = self.upstream[step]
        expected = tracking.digests(run).get(artifact)
        dest = self.workdir / "inputs" / step
        dest.mkdir(parents=True, exist_ok=True)
        path = Path(self.client.download_artifacts(run.info.run_id, artifact, str(dest)))
        if expected is None or sha256_file(path) != expected:
            raise UpstreamError(
                f"{artifact} of {step} run {run.info.run_id} does not match its sha256 tag; "
                f"re-run with pipeline.force=[{step}]"
            )
        return path

    def output(self, artifact: str, write: Callable[[Path], object]) -> str:
        """Write an artifact handed downstream, log it and tag its sha256."""
        path = self.workdir / "outputs" / artifact
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        digest = sha256_file(path)
        mlflow.log_artifact(str(path))
        mlflow.set_tag(f"{DIGEST_TAG}{artifact}", digest)
        return digest

    def warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)


def run_step(name: str, body: Callable[[StepContext], None], root: Path, argv: list[str] | None = None) -> int:
    """Run one step of the project at `root` as an MLflow run; return the exit code."""
    parser = argparse.ArgumentParser(prog=f"steps/{name}.py")
    parser.add_argument("--hydra-options", default="")
    parser.add_argument("--upstream", default="", help="step=run_id,... (default: from the cache)")
    args = parser.parse_args(argv)
    logs.configure(name)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    launched = os.environ.get("MLFLOW_RUN_ID")
    try:
        cfg, plain = load_config(root / "config", parse_overrides(args.hydra_options))
        mlflow.set_tracking_uri(tracking.tracking_uri(root))
        client = MlflowClient()
        experiment_id = tracking.ensure_experiment(client, cfg.tracking.experiment_name)
        upstream = _upstream(client, experiment_id, plain, name, args.upstream, root)
        key = tracking.step_key(plain, name, upstream, root)
        start = {} if launched else {"experiment_id": experiment_id, "run_name": name}
        with mlflow.start_run(**start) as run, tempfile.TemporaryDirectory() as tmp:
            mlflow.set_tags(
                {
                    STEP_TAG: name,
                    KEY_TAG: key,
                    **{f"{UPSTREAM_TAG}{s}": r.info.run_id for s, r in upstream.items()},
                }
            )
            ctx = StepContext(
                name,
                cfg,
                plain,
                root,
                Path(tmp),
                upstream,
                client,
                run.info.run_id,
                run.info.experiment_id,
                key,
            )
            try:
                _call(body, ctx)
            except HousingError as exc:
                mlflow.set_tag(ERROR_TAG, str(exc)[:5000])
                mirror.mirror_step(ctx, str(exc))
                raise
            except Exception as exc:
                mirror.mirror_step(ctx, f"{type(exc).__name__}: {exc}")
                raise
            mirror.mirror_step(ctx, None)
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
    runs: dict[str, Run] = {}
    for step in closure(list(STEPS[name].upstream)):
        key = tracking.step_key(plain, step, runs, root)
        run = tracking.find_cached(client, experiment_id, step, key)
        if run is None:
            raise UpstreamError(
                f"no finished '{step}' run matches the current config and code; run "
                f"`mlflow run . --env-manager local -P steps={step}` first"
            )
        runs[step] = run
    return runs
