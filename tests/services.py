"""A throwaway PostgreSQL cluster and an `mlflow server` backed by it, for the `postgres` tests.

PostgreSQL comes from Debian's `postgresql` package (`/usr/lib/postgresql/<major>/bin`): `initdb`
into a fresh temp folder, `postgres` on a free port of 127.0.0.1 with its socket in that folder,
fsync off (nothing here must survive a crash). PostgreSQL refuses to run as root, and CI runs as
root: then the cluster runs as the package's `postgres` user (or `housing-pg`, created with
`useradd` when neither exists). Host connections need the password (scram-sha-256), so a wrong
one fails as it would against a real server.

`HOUSING_TEST_POSTGRES=postgresql://user:pass@host:port/db` uses a running server instead (CI's
service container): the fixtures create their databases there, with a random suffix, and drop them.

The tracking server is `mlflow server` on another free port of 127.0.0.1, runs and registry in the
`mlflow` database, artifacts proxied (`--serve-artifacts`) into a temp folder, job execution off
(it otherwise starts ~7 worker processes, 2.3 GB). It can be killed and restarted on its port.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

BIN = Path(sys.executable).parent
PG_ROOT = Path("/usr/lib/postgresql")
USER = "housing"
# Must never appear in any output: the tests assert it is masked.
PASSWORD = "pg-Secret-4711"
EXTERNAL_ENV = "HOUSING_TEST_POSTGRES"
START_TIMEOUT_S = 90


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(
        PG_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
    )
    return found[-1].parent if found else None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, connect_timeout=5, autocommit=True)


@dataclass
class Postgres:
    """A PostgreSQL server on loopback that the tests may create databases on."""

    host: str
    port: int
    user: str
    password: str
    admin_db: str
    suffix: str = ""  # appended to database names on a shared (external) server
    created: list[str] = field(default_factory=list)

    def url(self, database: str, password: str | None = None, scheme: str = "postgresql") -> str:
        """`scheme://user:password@host:port/database`."""
        secret = self.password if password is None else password
        login = f"{self.user}:{secret}" if secret else self.user  # "": the driver reads PGPASSWORD
        return f"{scheme}://{login}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name` (suffixed on a shared server); return its real name."""
        real = f"{name}{self.suffix}"
        connection = _connect(self.url(self.admin_db))
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{real}"')
        connection.close()
        self.created.append(real)
        return real

    def drop_created(self) -> None:
        connection = _connect(self.url(self.admin_db))
        with connection.cursor() as cursor:
            for name in self.created:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


def _cluster_user() -> pwd.struct_passwd | None:
    """Who runs the cluster: None (this user) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "housing-pg"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "housing-pg"],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam("housing-pg")


def _as(user: pwd.struct_passwd | None) -> dict:
    """subprocess keywords that run a command as `user` (nothing for the current user)."""
    return {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _wait_ready(postgres: Postgres, process: subprocess.Popen | None, log: Path | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            _connect(postgres.url(postgres.admin_db)).close()
            return
        except Exception as exc:
            if process is not None and process.poll() is not None:
                tail = log.read_text()[-2000:] if log else ""
                raise RuntimeError(f"postgres exited with {process.returncode}:\n{tail}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL on port {postgres.port} not ready in {START_TIMEOUT_S} s: {exc}"
                ) from exc
            time.sleep(0.2)


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session: HOUSING_TEST_POSTGRES's, or a throwaway cluster."""
    external = os.environ.get(EXTERNAL_ENV)
    if external:
        parts = urlsplit(external)
        postgres = Postgres(
            parts.hostname or "127.0.0.1",
            parts.port or 5432,
            parts.username or "postgres",
            parts.password or "",
            parts.path.lstrip("/") or "postgres",
            suffix=f"_{uuid.uuid4().hex[:8]}",
        )
        _wait_ready(postgres, None, None)
        try:
            yield postgres
        finally:
            postgres.drop_created()
        return
    binaries = pg_bin()
    if binaries is None:
        pytest.skip(f"PostgreSQL not installed (no {PG_ROOT}/*/bin/initdb): apt-get install postgresql")
    user = _cluster_user()
    # not under pytest's 0700 basetemp: the cluster's user must reach its folder
    folder = Path(tempfile.mkdtemp(prefix="housing-pg-"))
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    (folder / "password").write_text(PASSWORD)
    if user is not None:
        os.chown(folder / "password", user.pw_uid, user.pw_gid)
    data, log = folder / "data", folder / "postgres.log"
    subprocess.run(
        [
            str(binaries / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={folder / 'password'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--locale=C", "--encoding=UTF8", "--no-sync",
        ],
        cwd=folder, check=True, capture_output=True, **_as(user),
    )  # fmt: skip
    port = free_port()
    with open(log, "w") as out:
        if user is not None:
            os.chown(log, user.pw_uid, user.pw_gid)
        process = subprocess.Popen(
            [
                str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            cwd=folder, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **_as(user),
        )  # fmt: skip
    postgres = Postgres("127.0.0.1", port, USER, PASSWORD, "postgres")
    try:
        _wait_ready(postgres, process, log)
        yield postgres
    finally:
        process.send_signal(signal.SIGINT)  # fast shutdown: roll back, disconnect, stop
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def masked(url: str) -> str:
    """`url` with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class TrackingServer:
    """`mlflow server` on 127.0.0.1 backed by PostgreSQL, with proxied artifacts; restartable."""

    def __init__(self, backend_uri: str, folder: Path) -> None:
        self.backend_uri = backend_uri
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.artifacts = folder / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.folder / f"server-{self.starts}.log"

    def start(self) -> None:
        """Start the server and wait until /health answers."""
        self.starts += 1
        env = {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        }
        command = [
            str(BIN / "mlflow"), "server", "--backend-store-uri", self.backend_uri, "--serve-artifacts",
            "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
        ]  # fmt: skip
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mlflow server not healthy in {START_TIMEOUT_S} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def kill(self) -> None:
        """SIGKILL the server and its workers (its whole process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
