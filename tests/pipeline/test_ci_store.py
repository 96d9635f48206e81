"""Where the retrain workflow's SQLite registry comes from (`make restore-store`): the cache's store,
an earlier retraining's uploaded store, or a new registry said out loud. Real stores, built by MLflow."""

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from housing_mlops.errors import StorageError
from housing_mlops.pipeline.ci_store import NEW_REGISTRY, newest_store_artifact, restore_store
from tests.conftest import MODEL, ROOT


def registry_with_champion(folder: Path) -> Path:
    """An MLflow SQLite store in `folder` (artifacts beside it, as the pipeline keeps them) with two
    versions of the model, v2 champion, and one logged file; returns the folder."""
    folder.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.create_experiment("housing-mlops", artifact_location=(folder / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    note = folder.parent / "note.txt"
    note.write_text("from the earlier retraining\n")
    client.log_artifact(run.info.run_id, str(note))
    client.create_registered_model(MODEL)
    for _ in range(2):
        client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", "2")
    return folder


def test_an_earlier_store_is_restored_with_its_champion_and_artifacts(tmp_path: Path) -> None:
    previous = registry_with_champion(tmp_path / "artifact")
    store = tmp_path / "mlflow-store"
    line = restore_store(store, previous, MODEL, "retraining run 42")
    assert (
        line == f"registry: restored from the store uploaded by retraining run 42 (2 versions of {MODEL}, champion v2)"
    )
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    (copied,) = (store / "mlartifacts").rglob("note.txt")
    assert copied.read_text() == "from the earlier retraining\n"


def test_the_cached_store_wins_over_an_artifact(tmp_path: Path) -> None:
    store = registry_with_champion(tmp_path / "mlflow-store")
    other = tmp_path / "other"
    line = restore_store(store, other, MODEL, "retraining run 7")
    assert line == f"registry: restored from the Actions cache (2 versions of {MODEL}, champion v2)"


@pytest.mark.parametrize("previous", [None, "empty", "missing"])
def test_no_earlier_store_is_a_new_registry_said_out_loud(tmp_path: Path, previous: str | None) -> None:
    folder = None if previous is None else tmp_path / previous
    if previous == "empty":
        tmp_path.joinpath("empty").mkdir()
    store = tmp_path / "mlflow-store"
    line = restore_store(store, folder, MODEL)
    assert line.startswith(f"{NEW_REGISTRY} (")
    assert store.is_dir()
    assert not any(store.iterdir())


def test_a_file_that_is_not_a_store_fails_in_one_line_before_any_copy(tmp_path: Path) -> None:
    previous = tmp_path / "artifact"
    previous.mkdir()
    (previous / "mlflow.db").write_text("not sqlite")
    store = tmp_path / "mlflow-store"
    with pytest.raises(StorageError, match=r"artifact/mlflow\.db is not an MLflow tracking store .*: delete that"):
        restore_store(store, previous, MODEL)
    assert not store.exists()


def test_the_newest_unexpired_store_of_a_successful_run_is_chosen() -> None:
    artifacts = [
        {"name": "mlflow-store-30", "expired": False, "created_at": "2026-12-03T03:40:00Z"},  # failed run
        {"name": "mlflow-store-20", "expired": False, "created_at": "2026-12-02T03:40:00Z"},
        {"name": "monitor-report-25", "expired": False, "created_at": "2026-12-02T05:00:00Z"},
        {"name": "mlflow-store-10", "expired": True, "created_at": "2026-12-01T03:40:00Z"},
        {"name": "mlflow-store-15", "expired": False, "created_at": "2026-11-30T03:40:00Z"},
    ]
    assert newest_store_artifact([10, 15, 20, 25], artifacts) == 20
    assert newest_store_artifact([10, 15, 25], artifacts) == 15
    assert newest_store_artifact([10, 25], artifacts) is None
    assert newest_store_artifact([], []) is None


def restore_command(store: Path, previous: Path, run: str = "") -> list[str]:
    """What retrain.yml and monitor.yml run: `make restore-store`, here on folders of this test."""
    venv = Path(sys.prefix)
    return [
        "make", "-s", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "restore-store",
        f"CI_STORE={store}", f"PREVIOUS_STORE={previous}", f"PREVIOUS_RUN={run}",
    ]  # fmt: skip


@pytest.mark.e2e  # runs make
def test_make_restore_store_restores_a_downloaded_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = registry_with_champion(tmp_path / "previous-store")
    store, summary = tmp_path / "mlflow-store", tmp_path / "summary.md"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    done = subprocess.run(restore_command(store, previous, "4242"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert summary.read_text() == (
        f"registry: restored from the store uploaded by retraining run 4242 (2 versions of {MODEL}, champion v2)\n"
    )
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


@pytest.mark.e2e  # runs make
def test_make_restore_store_says_new_registry_when_none_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, summary = tmp_path / "mlflow-store", tmp_path / "summary.md"
    summary.write_text("earlier lines\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    # the download step was skipped: its folder does not exist
    done = subprocess.run(
        restore_command(store, tmp_path / "previous-store"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    earlier, line = summary.read_text().splitlines()
    assert earlier == "earlier lines"  # appended, as GitHub's summary file expects
    assert line.startswith("new registry: no earlier store found")


@pytest.mark.e2e  # runs make
def test_make_restore_store_fails_in_one_line_on_a_broken_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = tmp_path / "previous-store"
    previous.mkdir()
    (previous / "mlflow.db").write_bytes(b"\0" * 100)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    done = subprocess.run(
        restore_command(tmp_path / "store", previous, "9"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert "previous-store/mlflow.db is not an MLflow tracking store" in line
    assert "MLFLOW_TRACKING_URI secret" in line


@pytest.mark.e2e  # runs make
def test_make_restore_store_does_nothing_with_a_tracking_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = registry_with_champion(tmp_path / "previous-store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    done = subprocess.run(
        restore_command(tmp_path / "store", previous, "1"), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "summary.md").read_text().startswith("registry: the tracking server of MLFLOW_TRACKING_URI")
    assert not (tmp_path / "store").exists()
