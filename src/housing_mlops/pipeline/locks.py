"""Coordination between pipelines on one machine.

A lock per (step, cache key) and the identity of the process that drives a pipeline run, safe
against pid reuse.
"""

import hashlib
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock
import psutil

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
    when its holder dies, so a killed pipeline leaves nothing to clean up. Pipelines on other
    machines sharing a tracking server are not coordinated by it.
    """
    uri = tracking_uri(root)
    database = sqlite_path(uri)  # one database file, however its URI is spelled
    store = hashlib.sha256(str(database or uri).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"housing-mlops-locks-{store}"
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
