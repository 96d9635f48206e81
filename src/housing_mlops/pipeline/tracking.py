"""MLflow primitives shared by the step runner and the orchestrator: where runs live,
how outputs are digested, and how a step's cache key finds a finished run."""

import fcntl
import hashlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

import housing_mlops
from housing_mlops.data import source
from housing_mlops.pipeline import cache
from housing_mlops.pipeline.dag import STEPS
from housing_mlops.tags import DIGEST_TAG, KEY_TAG, STEP_TAG

log = logging.getLogger(__name__)

UNCACHEABLE = "uncacheable"


def tracking_uri(root: Path) -> str:
    """MLFLOW_TRACKING_URI if set, else the project's own SQLite store (never MLflow's default)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root / 'mlflow.db').resolve()}"


def code_version(root: Path) -> dict[str, str]:
    """git SHA of the project and whether the working tree has uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"sha": "unknown", "dirty": "unknown"}
    return {"sha": sha, "dirty": str(bool(status.strip())).lower()}


def local_store_dir(root: Path) -> Path:
    """Folder of the SQLite tracking store, or the project root for a remote store; local
    state that must outlive a step (artifacts, Optuna studies) lives there."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent
    return root


def ensure_experiment(client: MlflowClient, name: str) -> str:
    """Experiment id for `name`, created on first use. With a SQLite store, artifacts go to
    `mlartifacts/` beside the database file rather than MLflow's default `./mlruns`."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    uri = str(client.tracking_uri)
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent pipeline
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def digests(run: Run) -> dict[str, str]:
    """Output artifact name -> sha256, from the run's digest tags."""
    return {k.removeprefix(DIGEST_TAG): v for k, v in run.data.tags.items() if k.startswith(DIGEST_TAG)}


def step_key(plain: Mapping[str, Any], step: str, upstream: Mapping[str, Run], root: Path) -> str:
    """Cache key of `step` given its resolved config and the upstream runs it would read."""
    spec = STEPS[step]
    source_id = None
    if not spec.upstream:
        data = plain["data"]
        source_id = source.fingerprint(data["source"], data["sha256"])
        if source_id is None:
            return UNCACHEABLE
    package = Path(housing_mlops.__file__).parent
    files = [*package.rglob("*.py"), root / "steps" / f"{step}.py", root / "MLproject"]
    return cache.cache_key(
        step,
        cache.step_config(plain, spec, source_id),
        {name: digests(upstream[name]) for name in spec.upstream},
        cache.code_fingerprint(files, root),
    )


def find_cached(client: MlflowClient, experiment_id: str, step: str, key: str) -> Run | None:
    """The newest FINISHED run of `step` with this cache key whose outputs are all digested."""
    if key == UNCACHEABLE:
        return None
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{KEY_TAG}` = '{key}' and tags.`{STEP_TAG}` = '{step}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=5,
    )
    outputs = set(STEPS[step].outputs)
    return next((run for run in runs if outputs <= digests(run).keys()), None)


def process_identity(pid: int | None = None) -> str | None:
    """`boot-id:pid-namespace:pid:start-time` of a process on this machine (Linux /proc), or
    None where that cannot be read. Another process, even one reusing the pid later, never
    has the same identity; another container or machine never has the same prefix."""
    pid = os.getpid() if pid is None else pid
    machine, started = _machine(), _proc_stat(pid)
    if machine is None or started is None:
        return None
    return f"{machine}:{pid}:{started[1]}"


def process_alive(identity: str | None) -> bool | None:
    """Whether the process named by `process_identity` still runs; None when that cannot be
    told from here (no identity, another machine or container, no /proc)."""
    machine = _machine()
    if not identity or machine is None or not identity.startswith(f"{machine}:"):
        return None
    pid, started = identity.removeprefix(f"{machine}:").split(":")
    stat = _proc_stat(int(pid))
    return stat is not None and stat[1] == started and stat[0] != "Z"  # a zombie is gone too


def _machine() -> str | None:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of `pid`, or None if there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


@contextmanager
def step_lock(root: Path, step: str, key: str) -> Iterator[None]:
    """Hold an exclusive lock on (`step`, cache `key`) for this tracking store; look for a
    cache hit again once it is held.

    Two pipelines on one machine and store then never run the same step with the same
    inputs at once: the second waits and reuses the first's run. The kernel drops the lock
    when its holder dies, so a killed pipeline leaves nothing to clean up. Pipelines on other
    machines sharing a tracking server are not coordinated by it.
    """
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///"):  # one database file, however its URI is spelled
        uri = str(Path(uri.removeprefix("sqlite:///")).resolve())
    store = hashlib.sha256(uri.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"housing-mlops-locks-{store}"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{step}-{key[:32]}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting: a concurrent pipeline is running this step with the same inputs", extra={"step": step})
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
