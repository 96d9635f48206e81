"""Where a study lives: open its storage, mask its URL, and one lock per study shared by machines.

A SQLite file serves the workers of one machine (forked, with fixed shares of the budget). A
server URL (PostgreSQL, MySQL) serves workers on several machines started independently: each
claims its next trial under the study's advisory lock, so the study ends with exactly its budget
of trials, and a dead worker's trial is failed through Optuna's heartbeat instead of by whoever
starts next (which would fail a live machine's trial).
"""

import contextlib
import functools
import hashlib
import sqlite3
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import sqlalchemy
from optuna.study import StudyDirection

from housing_mlops.config.checks import masked_url as masked
from housing_mlops.config.checks import url_scheme as scheme
from housing_mlops.errors import StudyStorageError


def shared(url: str) -> bool:
    """Whether workers on other machines can share the study (a server, not a SQLite file)."""
    return scheme(url) != "sqlite"


def _reason(exc: BaseException, url: str) -> str:
    """The driver's own message on one line, without the password."""
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    text = text.split(" (Background on this error", 1)[0]
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def open_storage(url: str, heartbeat_s: int) -> optuna.storages.RDBStorage:
    """The study storage at `url`.

    SQLite waits up to a minute for a lock instead of failing at once (workers of one sweep write
    trials to the same file). A shared storage gets Optuna's heartbeat: a running trial beats every
    `heartbeat_s`; one silent for twice that is failed by the next worker that asks for a trial.
    A database that cannot be opened is one StudyStorageError naming the masked URL.
    """
    try:
        if not shared(url):
            creator = functools.partial(_sqlite, _sqlite_file(url))
            return optuna.storages.RDBStorage(url, engine_kwargs={"creator": creator})
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_s,
                grace_period=2 * heartbeat_s,
            )
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        raise StudyStorageError(
            f"sweep.storage {masked(url)}: cannot open the study database: {_reason(exc, url)}; "
            "check the host, port, user, password (or PGPASSWORD) and that the database exists"
        ) from exc


def _sqlite_file(url: str) -> str:
    path = sqlalchemy.make_url(url).database
    if not path or path == ":memory:":
        raise StudyStorageError(f"sweep.storage {url}: name a SQLite file (sqlite:///path/to/studies.db), or null")
    return path


def _sqlite(path: str) -> sqlite3.Connection:
    """A connection to the study file that does not wait for the disk at every commit.

    Optuna commits ~20 times a trial (each parameter, each intermediate value, each state), and
    SQLite's default (rollback journal, synchronous=FULL) syncs the disk at every commit, which a
    busy disk makes slow (`benchmarks.study_storage` times it). WAL with synchronous=NORMAL still
    survives a killed process whole (a power cut may lose the last trials, never the file);
    `snapshot` copies it out.
    """
    connection = sqlite3.connect(path, timeout=60, check_same_thread=False)  # waits for workers' locks
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def snapshot(url: str, dest: Path) -> Path:
    """Copy the SQLite study file at `url` to `dest` as one self-contained file (no WAL beside it)."""
    with (
        contextlib.closing(sqlite3.connect(_sqlite_file(url), timeout=60)) as source,
        contextlib.closing(sqlite3.connect(dest)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")
    return dest


def check_direction(study: optuna.Study, url: str) -> None:
    """Raise unless `study` minimises one objective, as the sweep's CV wMAPE needs."""
    if study.directions != [StudyDirection.MINIMIZE]:
        found = ", ".join(d.name.lower() for d in study.directions)
        raise StudyStorageError(
            f"study '{study.study_name}' in sweep.storage {masked(url)} was created to {found}, "
            "but the sweep minimises CV wMAPE: set another sweep.study_name"
        )


class StudyLock:
    """An exclusive lock on one study, held in its database: every machine sharing it sees it.

    PostgreSQL: a session advisory lock; MySQL: GET_LOCK; SQLite: no lock (one machine, whose
    workers have fixed shares). `release` is idempotent, so a holder may release early.
    """

    def __init__(self, storage: optuna.storages.RDBStorage, study_name: str) -> None:
        """A lock on `study_name` in `storage`'s database (not yet held)."""
        self._engine = storage.engine
        self._name = f"housing-mlops-study:{study_name}"
        self._key = int.from_bytes(hashlib.sha256(self._name.encode()).digest()[:8], "big", signed=True)
        self._connection: sqlalchemy.Connection | None = None

    def acquire(self) -> None:
        """Wait until this process holds the lock."""
        dialect = self._engine.dialect.name
        if dialect not in ("postgresql", "mysql"):
            return
        self._connection = self._engine.connect()
        if dialect == "postgresql":
            self._connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key})
        else:
            self._connection.execute(sqlalchemy.text("SELECT GET_LOCK(:name, -1)"), {"name": self._name[:64]})
        self._connection.commit()

    def release(self) -> None:
        """Give the lock up (nothing when not held)."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            if self._engine.dialect.name == "postgresql":
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            else:
                connection.execute(sqlalchemy.text("SELECT RELEASE_LOCK(:name)"), {"name": self._name[:64]})
            connection.commit()
        finally:
            connection.close()  # a dropped connection drops its session locks too

    def __enter__(self) -> "StudyLock":
        """Acquire."""
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        """Release."""
        self.release()
