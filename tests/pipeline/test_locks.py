"""The step lock between processes, and process identities that survive pid reuse."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from housing_mlops.pipeline.locks import process_alive, process_identity, step_lock
from tests.conftest import ROOT

HOLD = (
    "import sys, time; from pathlib import Path; from housing_mlops.pipeline.locks import step_lock; "
    "lock = step_lock(Path(sys.argv[1]), 'split', 'k' * 64); lock.__enter__(); print('held', flush=True); "
    "time.sleep(float(sys.argv[2]))"
)


def _holder(seconds: float) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ROOT), str(seconds)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_second_holder_waits_for_the_first(capsys: pytest.CaptureFixture[str]) -> None:
    child = _holder(1.0)
    started = time.monotonic()
    with step_lock(ROOT, "split", "k" * 64):
        waited = time.monotonic() - started
    child.wait(timeout=30)
    assert waited > 0.5
    assert "[split] waiting: a concurrent pipeline is running this step" in capsys.readouterr().out


def test_the_lock_dies_with_its_holder_and_keys_do_not_share_it() -> None:
    child = _holder(60.0)
    try:
        with step_lock(ROOT, "split", "other" * 13):  # another cache key: no wait
            pass
        child.kill()
        child.wait(timeout=30)
        started = time.monotonic()
        with step_lock(ROOT, "split", "k" * 64):
            assert time.monotonic() - started < 5
    finally:
        child.kill()


def test_a_tracking_store_has_its_own_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    child = _holder(60.0)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
        started = time.monotonic()
        with step_lock(ROOT, "split", "k" * 64):
            assert time.monotonic() - started < 5
    finally:
        child.kill()
        child.wait(timeout=30)


def test_the_locks_live_beside_the_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}/../store/runs.db")  # spelled the long way
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        with step_lock(ROOT, "split", "k" * 64):
            assert [p.name for p in (store / ".runs.db.locks").iterdir()] == [f"split-{'k' * 32}.lock"]
    finally:
        tempfile.tempdir = None
    assert list(elsewhere.iterdir()) == []  # nothing in the temp dir to outlive the store


def test_process_identity_and_liveness() -> None:
    me = process_identity()
    assert me is not None
    assert process_alive(me) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    identity = process_identity(child.pid)
    child.wait(timeout=30)
    assert identity is not None
    assert process_alive(identity) is False
    machine, pid, started = me.rsplit(":", 2)
    assert process_alive(f"{machine}:{pid}:{float(started) - 1!r}") is False  # the pid, reused by another process
    assert process_alive(f"another-machine:{pid}:{started}") is None
    assert process_alive(None) is None
    assert process_identity(2**22 + 1) is None  # above Linux's pid_max: no such process


def test_a_server_claim_is_exclusive_released_and_a_dead_holders_claim_is_taken_over() -> None:
    from mlflow.tracking import MlflowClient

    from housing_mlops.pipeline import locks

    client = MlflowClient()  # the test's own SQLite store: its registry enforces unique names as a server does
    name = f"{locks.CLAIM_PREFIX}register.{'k' * 32}"
    with locks.server_claim(client, "register", "k" * 64, heartbeat_s=1):
        assert client.get_registered_model(name).tags["holder"] == process_identity()
        assert not locks._try_claim(client, name, "someone else")
        time.sleep(1.5)  # one beat
        assert float(client.get_registered_model(name).tags["beat"]) > time.time() - 1.5
    assert client.search_registered_models(f"name = '{name}'") == []

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = process_identity().rsplit(":", 2)[0] + f":{dead.stdout.strip()}:0.0"  # this machine, a dead pid
    assert process_alive(gone) is False
    client.create_registered_model(name, tags={"holder": gone, "beat": repr(time.time())})
    started = time.monotonic()
    with locks.server_claim(client, "register", "k" * 64, heartbeat_s=60):
        assert client.get_registered_model(name).tags["holder"] == process_identity()
    assert time.monotonic() - started < 10, "a dead holder's claim is taken over at once"


def test_a_claim_released_while_the_server_looked_it_up_is_asked_for_again() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
    from mlflow.tracking import MlflowClient

    from housing_mlops.pipeline import locks

    class Racing(MlflowClient):
        """The server's answer when the holder released the claim mid-request, once."""

        raced = False

        def create_registered_model(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if not self.raced:
                self.raced = True
                raise MlflowException("Registered Model not found", error_code=RESOURCE_DOES_NOT_EXIST)
            return super().create_registered_model(*args, **kwargs)

    client = Racing()
    name = f"{locks.CLAIM_PREFIX}impute.{'r' * 32}"
    with locks.server_claim(client, "impute", "r" * 64, heartbeat_s=60):
        assert client.raced
        assert client.get_registered_model(name).tags["holder"] == process_identity()
    assert client.search_registered_models(f"name = '{name}'") == []
