"""Study storage URLs: masked in every message, their scheme checked at start-up, a study of the
other direction refused. The live PostgreSQL side is in tests/e2e/test_postgres.py."""

import contextlib
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest

from housing_mlops.config.checks import masked_url, url_scheme
from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError, StudyStorageError
from housing_mlops.modeling import study_store
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://team:s3cr3t@db-host:5432/optuna", "postgresql://team:***@db-host:5432/optuna"),
        ("postgresql+psycopg://team:s3cr3t@db-host/optuna", "postgresql+psycopg://team:***@db-host/optuna"),
        ("postgresql://team@db-host/optuna", "postgresql://team@db-host/optuna"),
        ("sqlite:////tmp/studies.db", "sqlite:////tmp/studies.db"),
    ],
)
def test_a_password_is_masked_and_nothing_else_changes(url: str, masked: str) -> None:
    assert masked_url(url) == masked


def test_the_scheme_ignores_the_driver_and_tells_shared_storage() -> None:
    assert url_scheme("postgresql+psycopg://u@h/db") == "postgresql"
    assert url_scheme("no-scheme-here") == ""
    assert study_store.shared("postgresql://u@h/db")
    assert not study_store.shared("sqlite:////tmp/x.db")


def test_an_unknown_storage_scheme_is_a_config_error_with_the_password_masked() -> None:
    override = "sweep.storage=postgress://team:s3cr3t@db-host/optuna"
    with pytest.raises(
        ConfigError, match=r"config key 'sweep\.storage' = 'postgress://team:\*\*\*@db-host/optuna'"
    ) as info:
        load_config(ROOT / "config", [override])
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_sqlite_storage_in_memory_is_a_config_error(url: str) -> None:
    # each connection, each worker, each re-run would see an empty database of its own
    with pytest.raises(ConfigError, match=rf"config key 'sweep\.storage' = '{url}'.*a file, sqlite:///path/studies.db"):
        load_config(ROOT / "config", [f"sweep.storage={url}"])


def test_a_study_created_to_maximize_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(storage=url, study_name="other", direction="maximize")
    study = optuna.load_study(study_name="other", storage=study_store.open_storage(url, heartbeat_s=10))
    with pytest.raises(StudyStorageError, match=r"study 'other' in sweep.storage sqlite:///.* was created to maximize"):
        study_store.check_direction(study, url)


def test_an_unreadable_sqlite_study_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'studies.db'}"
    with pytest.raises(
        StudyStorageError, match=r"^sweep.storage sqlite:///.*: cannot open the study database: [^\n]*$"
    ):
        study_store.open_storage(url, heartbeat_s=10)


def test_a_sqlite_study_commits_without_syncing_and_its_snapshot_holds_every_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    storage = study_store.open_storage(url, heartbeat_s=10)
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5)
    # the trials are still in the write-ahead log (the storage is open): copying the file misses them
    shutil.copy(tmp_path / "studies.db", tmp_path / "plain-copy.db")
    assert (tmp_path / "studies.db-wal").stat().st_size > 0
    (tmp_path / "out").mkdir()
    copy = study_store.snapshot(url, tmp_path / "out" / "studies.db")
    assert sorted(p.name for p in copy.parent.iterdir()) == ["studies.db"]  # one file, no WAL beside it
    with contextlib.closing(sqlite3.connect(copy)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{copy}").trials) == 5
    with pytest.raises(KeyError):  # what logging the file itself would have given
        optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'plain-copy.db'}")
    storage.engine.dispose()
