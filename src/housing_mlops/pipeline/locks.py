"""Coordination between pipelines: one machine, or several sharing a tracking server.

A lock per (step, cache key): a file lock beside a SQLite store, a claim recorded on the tracking
server otherwise; and the identity of the process that drives a pipeline run, safe against pid
reuse.
"""

import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import filelock
import psutil
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from housing_mlops.pipeline.tracking import sqlite_path, tracking_uri

log = logging.getLogger(__name__)


def process_identity(pid: int | None = None) -> str | None:
    """`machine:pid:create-time` of a process on this machine, or None where it cannot be read.

    Another process, even one reusing the pid later, never has the same identity; another boot,
    container or machine never has the same prefix.
    """
    pid = os.getpid() if pid is None else pid
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return None
    return f"{_machine()}:{pid}:{started!r}"


def process_alive(identity: str | None) -> bool | None:
    """Whether the process named by `process_identity` still runs.

    None when that cannot be told from here (no identity, another machine or container, no
    permission).
    """
    prefix = f"{_machine()}:"
    if not identity or not identity.startswith(prefix):
        return None
    pid, started = identity.removeprefix(prefix).split(":")
    try:
        process = psutil.Process(int(pid))
        return repr(process.create_time()) == started and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # gone (a zombie is gone too: ZombieProcess is a NoSuchProcess)
        return False
    except psutil.Error:
        return None


def _machine() -> str:
    """This boot of this machine and this pid namespace.

    psutil names neither, and a pid (with its create time) means one process only within them.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}-{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no Linux /proc: the host name and boot time still tell boots apart
        return f"{socket.gethostname()}-{psutil.boot_time():.0f}"


@contextmanager
def step_lock(root: Path, step: str, key: str) -> Iterator[None]:
    """Hold an exclusive lock on (`step`, cache `key`) for this tracking store.

    Once the lock is held, look for a cache hit again.

    Two pipelines on one machine and store then never run the same step with the same
    inputs at once: the second waits and reuses the first's run. The kernel drops the lock
    when its holder dies, so a killed pipeline leaves nothing to clean up. Other machines cannot
    see it: with a tracking server, `step_claim` claims on the server instead.
    """
    folder = _lock_folder(tracking_uri(root))
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / f"{step}-{key[:32]}.lock")
    try:
        lock.acquire(blocking=False)
    except filelock.Timeout:
        log.info("waiting: a concurrent pipeline is running this step with the same inputs", extra={"step": step})
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _lock_folder(uri: str) -> Path:
    """Where a store's step locks live: beside its SQLite database, so they go with it.

    One folder per database file, however its URI is spelled; any other store's in the temp dir.
    """
    database = sqlite_path(uri)
    if database is not None:
        return database.parent / f".{database.name}.locks"
    return Path(tempfile.gettempdir()) / f"housing-mlops-locks-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"


def step_claim(root: Path, client: MlflowClient, step: str, key: str, heartbeat_s: int) -> AbstractContextManager[None]:
    """The exclusive hold on (`step`, cache `key`) that pipelines sharing a store respect.

    A file lock for a SQLite store (one machine); a claim on the tracking server for any other
    store, which every machine using that server sees.
    """
    if sqlite_path(tracking_uri(root)) is not None:
        return step_lock(root, step, key)
    return server_claim(client, step, key, heartbeat_s)


CLAIM_PREFIX = "housing-mlops.claim."
_HOLDER, _BEAT = "holder", "beat"


@contextmanager
def server_claim(client: MlflowClient, step: str, key: str, heartbeat_s: int) -> Iterator[None]:
    """Hold a claim on (`step`, cache `key`) recorded on the tracking server.

    Once the claim is held, look for a cache hit again.

    Pipelines on several machines sharing one server then never run the same step with the same
    inputs at once. The claim is a registered model named after the step and key: the registry
    refuses a second model of that name, atomically, whoever asks. Its holder stamps it every
    `heartbeat_s`; a claim whose holder is known dead (same machine) or silent for three beats
    (another machine) is stale and taken over. Released by deleting the model.
    """
    name = f"{CLAIM_PREFIX}{step}.{key[:32]}"
    me = process_identity() or f"unknown:{os.getpid()}:{time.time()!r}"
    waiting = False
    while not _try_claim(client, name, me):
        if _stale(client, name, heartbeat_s):
            log.warning(f"taking over the stale claim {name}: its pipeline is gone", extra={"step": step})
            _drop(client, name)
            continue
        if not waiting:
            log.info(
                "waiting: a pipeline on this tracking server is running this step with the same inputs",
                extra={"step": step},
            )
            waiting = True
        time.sleep(1.0)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(client, name, heartbeat_s, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        _drop(client, name)


def _try_claim(client: MlflowClient, name: str, me: str) -> bool:
    try:
        client.create_registered_model(
            name,
            tags={_HOLDER: me, _BEAT: repr(time.time())},
            description="A pipeline is running this step: a claim, deleted when the step ends.",
        )
        return True
    except MlflowException as exc:
        # a server answers "does not exist" when the holder released the claim between our insert
        # failing on its name and the server's lookup of it (seen on PostgreSQL): not ours, ask again
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST"):
            raise
        return False


def _stale(client: MlflowClient, name: str, heartbeat_s: int) -> bool:
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException:  # released meanwhile
        return False
    alive = process_alive(tags.get(_HOLDER))
    if alive is not None:
        return not alive
    return time.time() - float(tags.get(_BEAT, "0")) > 3 * heartbeat_s


def _drop(client: MlflowClient, name: str) -> None:
    try:
        client.delete_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            log.warning(f"could not release the claim {name}: {exc}")


def _beat(client: MlflowClient, name: str, heartbeat_s: int, stop: threading.Event) -> None:
    while not stop.wait(heartbeat_s):
        try:
            client.set_registered_model_tag(name, _BEAT, repr(time.time()))
        except MlflowException as exc:  # the server is down: the step itself will say so
            log.warning(f"could not renew the claim {name}: {exc}")
