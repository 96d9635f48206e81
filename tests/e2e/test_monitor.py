"""`make monitor` on the session's trained champion: verdicts, the check's MLflow run, bad inputs.

The champion of the trained store was registered on the 2,000-row sample, with its reference.
Batches come from the real data: a random draw (ok), only INLAND districts without prices
(drift), prices scaled by 1.25 with labels (degraded). One check runs the real `make monitor`
(`mlflow run -e monitor`); the others run steps/monitor.py's CLI in-process against a copy of the
store. Every bad input must exit 1 with one line naming the problem, leave a FAILED run in the
monitor experiment with that line as its error tag, and change nothing else: the registry's
versions and aliases and the pipeline experiment stay as they were.
"""

import dataclasses
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Run
from steps import monitor as monitor_step

from housing_mlops.monitoring.inference_log import read_window
from housing_mlops.pipeline import logs, serving_model
from tests.conftest import MODEL, ROOT, Store, Trained
from tests.e2e.served import frame_body, post, serving

pytestmark = pytest.mark.e2e
EXPERIMENT = "housing-mlops-monitor"
TARGET = "median_house_value"


def monitor_runs(store: Store) -> list[Run]:
    experiment = store.client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return store.client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])


def registry_state(store: Store) -> list[tuple[str, str, dict[str, str], str]]:
    versions = store.client.search_model_versions(f"name='{MODEL}'")
    aliases = store.client.get_registered_model(MODEL).aliases
    return sorted((v.version, v.current_stage, dict(v.tags), str(aliases)) for v in versions)


def run_monitor(store: Store, batch: str, hydra: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """steps/monitor.py's CLI in this process, against `store`; its exit code."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    mlflow.set_tracking_uri(store.uri)
    try:
        return monitor_step.main(["--batch", batch, "--hydra-options", hydra])
    finally:
        logs.configure()  # the step configured logging for itself


@pytest.fixture(scope="module")
def store(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One copy for the checks that only add monitor runs."""
    return trained.copy(tmp_path_factory.mktemp("monitor") / "store")


@pytest.fixture(scope="module")
def batches(full_data: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("batches")
    made = {
        "ok": full_data.sample(1000, random_state=5),
        "drift": full_data[full_data.ocean_proximity == "INLAND"].sample(800, random_state=5).drop(columns=TARGET),
        "degraded": full_data.sample(1000, random_state=6).assign(**{TARGET: lambda df: df[TARGET] * 1.25}),
    }
    paths = {}
    for name, frame in made.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    paths["ok_parquet"] = folder / "ok.parquet"
    made["ok"].to_parquet(paths["ok_parquet"])
    return paths


def test_make_monitor_says_drift_in_its_own_run_and_fails_on_drift(
    store: Store, batches: dict[str, Path], tmp_path: Path
) -> None:
    before = registry_state(store)
    venv = Path(sys.prefix)
    report_dir = tmp_path / "report"
    cmd = ["make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "monitor"]
    cmd += [f"BATCH={batches['drift']}", f"HYDRA=monitor.fail_on=drift monitor.report_dir={report_dir}"]
    done = subprocess.run(cmd, env=store.env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout[-2000:]
    assert "[monitor] verdict drift: housing_price_model v1" in done.stdout, done.stdout[-2000:]
    assert "error: [monitor] verdict drift fails the check (monitor.fail_on=drift)" in done.stderr

    (run,) = monitor_runs(store)
    assert run.info.status == "FINISHED"  # the check worked; its verdict fails the command
    tags, metrics = run.data.tags, run.data.metrics
    assert (tags["housing.monitor.verdict"], tags["housing.monitor.champion_version"]) == ("drift", "1")
    assert tags["housing.monitor.batch"] == str(batches["drift"])
    assert metrics["psi.ocean_proximity"] > 1.0
    assert metrics["p_value.ocean_proximity"] < 0.01
    assert metrics["unseen.ocean_proximity"] == 0
    assert metrics["rows"] == 800
    assert metrics["drifted_features"] >= 1
    assert "wmape" not in metrics
    artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id)}
    assert {"report.html", "report.json", "summary.md", "plots"} <= artifacts
    plotted = {a.path for a in store.client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/ocean_proximity.png", "plots/prediction.png"} <= plotted
    page = (report_dir / "report.html").read_text()
    assert "Monitor verdict: drift" in page
    assert "data:image/png;base64," in page

    launcher = store.client.search_runs(
        [store.client.get_experiment_by_name("Default").experiment_id], order_by=["attributes.start_time DESC"]
    )[0]
    assert launcher.data.tags["housing.monitor.run_id"] == run.info.run_id
    assert registry_state(store) == before


@pytest.mark.parametrize(
    ("batch", "verdict", "code"),
    [("ok", "ok", 0), ("ok_parquet", "ok", 0), ("degraded", "degraded", 1)],
)
def test_unshifted_batch_is_ok_and_scaled_prices_are_degraded(
    store: Store,
    batches: dict[str, Path],
    batch: str,
    verdict: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_monitor(store, str(batches[batch]), "", monkeypatch) == code
    run = monitor_runs(store)[0]
    assert run.data.tags["housing.monitor.verdict"] == verdict
    assert f"[monitor] verdict {verdict}:" in capsys.readouterr().out
    metrics = run.data.metrics
    assert metrics["wmape_low"] <= metrics["wmape"] <= metrics["wmape_high"]
    test_wmape = float(store.client.get_model_version(MODEL, "1").tags["test.wmape"])
    if verdict == "degraded":
        assert metrics["wmape_low"] > test_wmape * 1.2
    else:
        assert metrics["drift_share"] < 0.1


# -- bad inputs --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A bad batch: how to write it (from the real rows, into a folder), and the expected line."""

    id: str
    make: Callable[[pd.DataFrame, Path, int], str]
    pattern: str
    hydra: str = ""


def _csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame, Path, int], str]:
    def make(rows: pd.DataFrame, folder: Path, port: int) -> str:
        path = folder / "batch.csv"
        change(rows.reset_index(drop=True)).to_csv(path, index=False)
        return str(path)

    return make


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.astype({column: object})
        rows.loc[row, column] = value
        return rows

    return change


def _file(name: str, content: bytes) -> Callable[[pd.DataFrame, Path, int], str]:
    def make(rows: pd.DataFrame, folder: Path, port: int) -> str:
        (folder / name).write_bytes(content)
        return str(folder / name)

    return make


CASES = [
    Case(
        "missing_feature",
        _csv(lambda df: df.drop(columns="median_income")),
        r"batch lacks feature column\(s\) \['median_income'\]: it needs every one of \[.*\]",
    ),
    Case(
        "zero_rows",
        _csv(lambda df: df.head(0)),
        r"batch has 0 rows: monitoring needs at least monitor\.min_rows = 200",
    ),
    Case(
        "too_few_rows",
        _csv(lambda df: df.head(150)),
        r"batch has 150 rows: monitoring needs at least monitor\.min_rows = 200",
    ),
    Case(
        "text_in_numeric",
        _csv(_set("total_rooms", 3, "lots")),
        r"batch column 'total_rooms' holds text: row 3 = 'lots'; expected numbers",
    ),
    Case(
        "text_in_target",
        _csv(_set(TARGET, 7, "n/a?")),
        r"batch target column 'median_house_value' holds text: row 7 = 'n/a\?'; expected numbers",
    ),
    Case(
        "negative_target",
        _csv(_set(TARGET, 9, -5.0)),
        r"batch target column 'median_house_value' is negative: row 9 = -5\.0",
    ),
    Case("missing_file", lambda rows, folder, port: str(folder / "nope.csv"), r"batch file not found: .*nope\.csv"),
    Case(
        "wrong_suffix",
        _file("batch.txt", b"a,b\n1,2\n"),
        r"batch .*batch\.txt: expected a file ending in \.csv, \.parquet",
    ),
    Case(
        "corrupt_parquet",
        _file("batch.parquet", b"PAR1 this is not parquet"),
        r"batch .*batch\.parquet cannot be read as parquet: .*",
    ),
    Case(
        "unreachable_url",
        lambda rows, folder, port: f"http://127.0.0.1:{port}/batch.csv",
        r"cannot download http://127\.0\.0\.1:\d+/batch\.csv after 2 attempts: .*",
        hydra="data.download.retries=1 data.download.backoff_s=0.01",
    ),
]


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def assert_failed_check(store: Store, runs_before: int, pattern: str, stderr: str) -> None:
    runs = monitor_runs(store)
    assert len(runs) == runs_before + 1, stderr[-2000:]
    failed = runs[0]
    assert failed.info.status == "FAILED"
    message = failed.data.tags["housing.error"]
    assert re.fullmatch(pattern, message), message
    assert "housing.monitor.verdict" not in failed.data.tags
    assert stderr.splitlines().count(f"error: [monitor] {message}") == 1, stderr[-2000:]
    assert not store.client.list_artifacts(failed.info.run_id)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_bad_batch_fails_the_check_with_one_line_and_touches_nothing(
    case: Case,
    store: Store,
    full_data: pd.DataFrame,
    closed_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before, runs_before, pipeline_runs = registry_state(store), len(monitor_runs(store)), len(store.runs())
    batch = case.make(full_data.sample(1000, random_state=7), tmp_path, closed_port)
    assert run_monitor(store, batch, case.hydra, monkeypatch) == 1
    assert_failed_check(store, runs_before, case.pattern, capsys.readouterr().err)
    assert registry_state(store) == before
    assert len(store.runs()) == pipeline_runs


def test_an_extra_column_is_ignored_and_said_once(
    store: Store,
    full_data: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "extra.csv"
    full_data.sample(1000, random_state=8).assign(note="x", district_id=np.arange(1000)).to_csv(path, index=False)
    assert run_monitor(store, str(path), "", monkeypatch) == 0
    err = capsys.readouterr().err
    line = "warning: batch columns ignored (not features of the model): note, district_id"
    assert err.splitlines().count(line) == 1, err
    assert monitor_runs(store)[0].data.tags["housing.monitor.verdict"] == "ok"


def random_batch(full_data: pd.DataFrame, folder: Path) -> str:
    """1,000 random real rows with prices, as a CSV file: a batch with nothing wrong in it."""
    path = folder / "batch.csv"
    full_data.sample(1000, random_state=9).to_csv(path, index=False)
    return str(path)


def test_no_champion_fails_the_check_naming_the_fix(
    trained: Trained,
    full_data: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = trained.copy(tmp_path / "store")
    store.client.delete_registered_model_alias(MODEL, "champion")
    before = registry_state(store)
    assert run_monitor(store, random_batch(full_data, tmp_path), "", monkeypatch) == 1
    pattern = (
        r"model 'housing_price_model' has no 'champion' in the registry at sqlite:///.*: "
        r"run `make pipeline` \(or `make promote VERSION=N`\) first"
    )
    assert_failed_check(store, 0, pattern, capsys.readouterr().err)
    assert registry_state(store) == before


def test_a_champion_registered_before_references_says_to_re_register(
    trained: Trained,
    full_data: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = trained.copy(tmp_path / "store")
    # what a model registered by an earlier version of the project looks like: no reference file
    (reference,) = (tmp_path / "store").glob(f"mlartifacts/models/*/artifacts/{serving_model.REFERENCE_FILE}")
    reference.unlink()
    assert run_monitor(store, random_batch(full_data, tmp_path), "", monkeypatch) == 1
    pattern = (
        r"model 'housing_price_model' v1 has no monitoring reference \(monitoring/reference\.json\): it was "
        r"registered before references existed; re-register it: make pipeline HYDRA='pipeline\.force=\[register\]'"
    )
    assert_failed_check(store, 0, pattern, capsys.readouterr().err)


# -- the captured inferences ---------------------------------------------------------------------


def test_served_rows_are_captured_then_monitored_without_a_batch(
    trained: Trained, full_data: pd.DataFrame, tmp_path: Path
) -> None:
    """`make serve` with capture on, requests of INLAND districts only, then `make monitor` with no
    BATCH: it reads the log's last window (skipping a torn file, said in one line) and says drift."""
    store = trained.copy(tmp_path / "store")
    log = tmp_path / "store" / "inference-log"  # capture.path null: beside the store's mlflow.db
    inland = full_data[full_data.ocean_proximity == "INLAND"].drop(columns=TARGET).sample(250, random_state=3)
    with serving(store, "capture.flush_seconds=0.1", {"HOUSING_CAPTURE": "1"}) as url:
        for start in range(0, len(inland), 50):
            assert post(url, frame_body(inland.iloc[start : start + 50]))[0] == 200
    assert len(read_window(log, "1h").rows) == len(inland)  # the server wrote what it held on shutdown
    torn = next(log.glob("date=*/hour=*")) / "torn.parquet"
    torn.write_bytes(b"PAR1 cut short")

    venv = Path(sys.prefix)
    cmd = ["make", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "monitor", "HYDRA=monitor.window=1h"]
    done = subprocess.run(cmd, env=store.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]  # drift does not fail under fail_on=degraded
    assert f"warning: inference log: skipped {torn}: " in done.stderr
    (run,) = monitor_runs(store)
    assert run.data.tags["housing.monitor.verdict"] == "drift"
    label = (
        rf"inference log {re.escape(str(log))}, last 1h: 250 rows from \d+ file\(s\), 1 unreadable file\(s\) skipped"
    )
    assert re.fullmatch(label, run.data.tags["housing.monitor.batch"]), run.data.tags["housing.monitor.batch"]
    assert run.data.metrics["rows"] == len(inland)
    assert run.data.metrics["psi.ocean_proximity"] > 1.0


def test_an_empty_inference_log_fails_the_check_naming_the_folder(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before, runs_before = registry_state(store), len(monitor_runs(store))
    empty = tmp_path / "log"
    assert run_monitor(store, "", f"capture.path={empty}", monkeypatch) == 1
    pattern = (
        rf"no inferences captured in the last 7d under {re.escape(str(empty))}: serve or predict with capture "
        r"on \(HOUSING_CAPTURE=1 make serve\), or pass BATCH=\.\.\."
    )
    assert_failed_check(store, runs_before, pattern, capsys.readouterr().err)
    assert registry_state(store) == before
