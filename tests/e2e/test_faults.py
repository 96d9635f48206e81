"""Fault injection against the real `mlflow run` on the 2,000-row sample: SIGKILL during the
sweep and during registration, two pipelines at once on one store, an unreachable tracking
server, a read-only artifact store, and two cold runs that must agree bit for bit.

The kill and read-only tests start from a copy of the session's trained store with one
setting changed, so only the step under test (and those after it) re-run: the killed run
and its resumption do as little as possible. The two cold runs are the trained store's and
the first of the two concurrent pipelines'.

`make test-faults` runs only these; `make test` runs them too (CI).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from housing_mlops.registry.store import CHALLENGER, CHAMPION, COMPLETE_TAG
from tests.conftest import FAST_OPTIONS, MODEL, ROOT, SAMPLE_OPTIONS, Store, Trained, assert_digests_match

pytestmark = [pytest.mark.faults, pytest.mark.e2e]
STEPS = ("ingest", "split", "impute", "features", "select", "sweep", "register")
# the sweep-kill test: one more trial than the trained store's sweep, and a kill after two of
# them, so the resumed run has three trials and `register` left to do
TRIALS = 5
# Metrics that measure time or process size, never the model: the only ones two identical
# runs may disagree on.
TIMING_METRICS = {
    "impute": {"seconds_median", "seconds_mean", "seconds_knn", "seconds_iterative"},
    "select.candidate": {"duration_s", "fit_s", "predict_s"},
    "sweep.trial": {"duration_s"},
    "register": {
        "hw_cpu_p95_ms",
        "hw_wall_p95_ms",
        "hw_load_s",
        "hw_rss_mb",
        "hw_rows_per_s",
        "hw_usd_per_million",
        "register_compile_s",
        "register_profile_s",
        "register_reference_s",
    },
}
# RandomForest predicts on 2 threads (models.zoo.random_forest.fixed.n_jobs=2) and sums the
# trees' predictions in whichever order the threads finish: its CV metrics can differ in the
# last bit between identical runs. Only these runs are compared to 1e-12 instead of exactly.
LAST_BIT_NOISE = {"select.candidate.random_forest"}


# -- helpers ---------------------------------------------------------------------------------


def start(store: Store, directory: Path, *args: str, hydra: str = FAST_OPTIONS, prefix: tuple[str, ...] = ()):
    """Start `mlflow run` in its own process group, output to files in `directory`.

    The store's schema is created first, by this process alone: MLflow 3.17's tracking store
    creates a new SQLite database's tables check-then-create without a lock
    (SqlAlchemyStore.__init__ -> db.utils._initialize_tables), so two processes opening a
    brand-new store at the same instant can fail with "table ... already exists".
    """
    store.client.search_experiments()
    directory.mkdir(parents=True, exist_ok=True)
    out, err = (directory / "stdout.txt").open("w"), (directory / "stderr.txt").open("w")
    process = subprocess.Popen(
        [*prefix, *store.command(*args, hydra=hydra)], env=store.env, stdout=out, stderr=err, start_new_session=True
    )
    process.logs = (directory / "stdout.txt", directory / "stderr.txt")  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    code = process.wait(timeout=timeout)
    out, err = (path.read_text() for path in process.logs)  # type: ignore[attr-defined]
    return code, out, err


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the pipeline and every step process it started."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_until(condition, process: subprocess.Popen, what: str, timeout: float = 500, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        assert process.poll() is None, f"the pipeline ended before {what}"
        time.sleep(every)
    kill_group(process)
    pytest.fail(f"timed out waiting for {what}")


def all_runs(store: Store) -> list[Run]:
    """Every run of every experiment (the `mlflow run` launcher runs live in Default)."""
    client = store.client
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=5000)


def step_runs(store: Store) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {}
    for run in store.runs():
        if "housing.step" in run.data.tags:
            runs.setdefault(run.data.tags["housing.step"], []).append(run)
    return runs


def trial_runs(store: Store) -> list[Run]:
    return [r for r in store.runs() if "housing.trial" in r.data.tags]


def versions(store: Store) -> list:
    try:
        return store.client.search_model_versions(f"name='{MODEL}'")
    except MlflowException:
        return []


def alias(store: Store, name: str):
    try:
        return store.client.get_model_version_by_alias(MODEL, name)
    except MlflowException:
        return None


def assert_no_running_runs(store: Store) -> None:
    running = [(r.info.run_name, r.info.run_id) for r in all_runs(store) if r.info.status == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"


def assert_registry_consistent(store: Store) -> list:
    """Every version completely registered; champion and challenger on complete versions."""
    found = versions(store)
    for version in found:
        assert version.tags.get(COMPLETE_TAG) == "complete", f"v{version.version} is half-registered"
        run = store.client.get_run(version.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags["housing.model_version"] == str(version.version)
    numbers = {str(v.version) for v in found}
    for name in (CHAMPION, CHALLENGER):
        holder = alias(store, name)
        assert holder is not None, f"{name} points nowhere"
        assert str(holder.version) in numbers, f"{name} points nowhere valid"
    return found


def study_of(store: Store, sweep: Run | None = None) -> optuna.Study:
    """The store's only study, or the one `sweep` ran."""
    storage = f"sqlite:///{Path(store.uri.removeprefix('sqlite:///')).parent / 'optuna' / 'studies.db'}"
    if sweep is not None:
        return optuna.load_study(study_name=sweep.data.params["study_name"], storage=storage)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def new_step_runs(store: Store, before: set[str]) -> dict[str, list[Run]]:
    """Step runs (newest first) that are not among the run ids in `before`."""
    return {
        step: fresh
        for step, runs in step_runs(store).items()
        if (fresh := [r for r in runs if r.info.run_id not in before])
    }


def run_ids(store: Store) -> set[str]:
    return {r.info.run_id for r in store.runs()}


def free_port() -> int:
    """A loopback port nothing listens on: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- SIGKILL ---------------------------------------------------------------------------------


def test_sigkill_during_sweep_then_rerun_completes_study_and_registers_once(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    before = run_ids(store)
    hydra = f"{FAST_OPTIONS} sweep.n_trials={TRIALS}"  # a new sweep key: select and earlier are reused
    process = start(store, tmp_path / "killed", hydra=hydra)
    wait_until(lambda: len([r for r in trial_runs(store) if r.info.run_id not in before]) >= 2, process, "two trials")
    kill_group(process)
    killed_when = datetime.now()
    killed_at = len([r for r in trial_runs(store) if r.info.run_id not in before])
    assert 2 <= killed_at < TRIALS
    (killed_sweep,) = new_step_runs(store, before)["sweep"]
    assert killed_sweep.info.status == "RUNNING"  # what a SIGKILL leaves behind
    assert "register" not in new_step_runs(store, before)

    rerun = store.mlflow_run(hydra=hydra)
    assert "[select] cached" in rerun.stdout
    assert "[sweep] running" in rerun.stdout
    assert "interrupted pipeline(s) KILLED" in rerun.stderr
    runs = new_step_runs(store, before)
    assert store.client.get_run(killed_sweep.info.run_id).info.status == "KILLED"
    sweep = next(r for r in runs["sweep"] if r.info.status == "FINISHED")
    study = study_of(store, sweep)
    states = [t.state for t in study.trials]
    assert sum(s.is_finished() for s in states) == TRIALS, states
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert sum(s == optuna.trial.TrialState.FAIL for s in states) <= 1  # the trial the kill interrupted
    # the rerun resumed the killed run's study (same sweep key, same study) instead of starting over
    assert sum(t.datetime_complete is not None and t.datetime_complete < killed_when for t in study.trials) >= killed_at

    counts = {k: sweep.data.metrics[f"trials_{k}"] for k in ("complete", "pruned", "fail")}
    assert sum(counts.values()) == TRIALS
    assert counts["complete"] >= 1
    nested = [r for r in trial_runs(store) if r.data.tags["mlflow.parentRunId"] == sweep.info.run_id]
    assert nested
    assert {r.data.tags["housing.trial.state"] for r in nested} <= {"COMPLETE", "PRUNED", "FAIL"}
    # upstream steps were reused, not re-run; exactly one new registration, the challenger
    assert set(runs) == {"sweep", "register"}
    assert len(runs["register"]) == 1
    found = assert_registry_consistent(store)
    assert sorted(int(v.version) for v in found) == [1, 2]
    assert runs["register"][0].data.tags["housing.model_version"] == "2"
    assert str(alias(store, CHALLENGER).version) == "2"
    assert str(alias(store, CHAMPION).version) in {"1", "2"}
    assert_no_running_runs(store)


def test_sigkill_during_register_leaves_no_half_registered_version(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    before = run_ids(store)
    hydra = f"{FAST_OPTIONS} deployment.profile.calls=21"  # a new register key: everything else is reused
    process = start(store, tmp_path / "killed", hydra=hydra)
    wait_until(lambda: "register" in new_step_runs(store, before), process, "the register step", every=0.2)
    found = wait_until(
        lambda: [v for v in versions(store) if int(v.version) != 1], process, "a new version", timeout=120, every=0.02
    )
    kill_group(process)
    (dangling,) = [v for v in versions(store) if int(v.version) != 1]
    assert found[0].version == dangling.version
    assert int(dangling.version) == 2
    # the kill landed between registration and the completion tag (the window under test)
    assert dangling.tags.get(COMPLETE_TAG) != "complete", "the kill came too late to leave a half-registered version"
    (killed_register,) = new_step_runs(store, before)["register"]
    assert killed_register.info.status == "RUNNING"

    rerun = store.mlflow_run(hydra=hydra)
    assert "[sweep] cached" in rerun.stdout
    assert "[register] running" in rerun.stdout
    assert f"deleted half-registered version(s) {dangling.version} of {MODEL}" in rerun.stdout
    assert store.client.get_run(killed_register.info.run_id).info.status == "KILLED"
    found = assert_registry_consistent(store)  # the dangling version is gone, no duplicate
    assert sorted(int(v.version) for v in found) == [1, 3]
    assert str(alias(store, CHALLENGER).version) == "3"
    runs = new_step_runs(store, before)
    assert set(runs) == {"register"}
    assert [r.info.status for r in runs["register"]] == ["FINISHED", "KILLED"]
    assert runs["register"][0].data.tags["housing.model_version"] == "3"
    assert_no_running_runs(store)


# -- an unreachable tracking server ------------------------------------------------------------


def _project_state() -> dict[str, object]:
    """Top-level entries of the project, and every file under the store folders it may hold."""
    state: dict[str, object] = {"entries": sorted(p.name for p in ROOT.iterdir())}
    for name in ("mlruns", "mlflow.db", "mlartifacts", "optuna", "mlflow-store"):
        path = ROOT / name
        files = [path, *path.rglob("*")] if path.exists() else []
        state[name] = sorted((str(f), f.stat().st_mtime_ns) for f in files)
    return state


def test_unreachable_tracking_server_fails_fast_and_writes_nothing(
    store: Store, tmp_path: Path, trained: Trained
) -> None:
    # `trained` first: its `make retrain` creates mlflow-store/ in the project (as the workflow
    # does); built meanwhile by another worker, it would look like this test's write
    uri = f"http://127.0.0.1:{free_port()}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = _project_state()
    base = {k: v for k, v in store.env.items() if not k.startswith("MLFLOW_HTTP_REQUEST_")}
    venv = Path(sys.prefix)
    commands = {
        # the project's entry point: the Makefile's MLFLOW_HTTP_* defaults apply
        "make": [
            "make",
            "-C",
            str(ROOT),
            f"VENV={venv}",
            "-o",
            f"{venv}/.installed",
            "pipeline",
            "STEPS=ingest",
            f"HYDRA={SAMPLE_OPTIONS}",
        ],
        # plain `mlflow run` from another directory, with the same settings exported
        "mlflow run": store.command("-P", "steps=ingest"),
    }
    http = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    for label, cmd in commands.items():
        env = {**base, "MLFLOW_TRACKING_URI": uri, **(http if label == "mlflow run" else {})}
        started = time.monotonic()
        done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started
        assert done.returncode != 0, label
        assert elapsed < 45, f"{label}: took {elapsed:.0f} s to give up on {uri}"
        last = [line for line in done.stderr.strip().splitlines() if not line.startswith("make")][-1]
        assert uri in last, f"{label}: {last}"
        assert "Connection refused" in last, f"{label}: {last}"
    assert _project_state() == before, "something was written into the project"
    assert list(cwd.iterdir()) == [], "something was written into the working directory"
    assert not Path(store.uri.removeprefix("sqlite:///")).exists()


# -- a read-only artifact store ----------------------------------------------------------------


@contextmanager
def read_only(directory: Path) -> Iterator[tuple[str, ...]]:
    """Make `directory` unwritable for the commands run with the yielded prefix.

    As root chmod does not stop writes, so the command runs in a private mount namespace
    where `directory` is a read-only bind mount of itself (EROFS); otherwise chmod 0555
    (EACCES). Either way a step's first artifact write fails as it would on a full disk.
    """
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield ()
        finally:
            directory.chmod(mode)
        return
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ("unshare", "--mount", "sh", "-c", script, str(directory))
    probe = subprocess.run([*prefix, "sh", "-c", f"touch {directory}/probe"], capture_output=True, text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip(f"cannot make a read-only mount here as root: {probe.stderr.strip()[:200]}")
    yield prefix


def test_read_only_artifact_store_fails_the_step_cleanly_and_is_not_cached(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    before = run_ids(store)
    (ingest,) = step_runs(store)["ingest"]
    artifacts = Path(store.uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    steps = ("-P", "steps=ingest,split,impute")
    hydra = f"{FAST_OPTIONS} split.seed=1"  # a new split key: split must write its outputs

    with read_only(artifacts) as prefix:
        code, out, err = finish(start(store, tmp_path / "read-only", *steps, hydra=hydra, prefix=prefix))
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error: [split]")]
    assert len(lines) == 1, err[-3000:]
    assert str(artifacts) in lines[0]
    assert "Read-only file system" in lines[0] or "Permission denied" in lines[0]
    assert "free space or fix permissions" in lines[0]
    assert "Traceback" not in err, err[-3000:]
    assert "step 'split' failed" in err
    runs = new_step_runs(store, before)
    (failed,) = runs["split"]
    assert failed.info.status == "FAILED"
    assert str(artifacts) in failed.data.tags["housing.error"]
    assert "impute" not in runs, "a step after the failed one ran"
    assert "ingest" not in runs
    assert "[ingest] cached" in out

    # the disk is back: split runs again (its FAILED run is no cache entry), ingest is reused
    again = store.mlflow_run(*steps, hydra=hydra)
    assert f"[ingest] cached: reusing run {ingest.info.run_id}" in again.stdout
    assert "[split] running" in again.stdout
    assert "[impute] running" in again.stdout
    runs = new_step_runs(store, before)
    assert [r.info.status for r in runs["split"]] == ["FINISHED", "FAILED"]
    assert runs["impute"][0].data.tags["housing.upstream.split"] == runs["split"][0].info.run_id
    assert_digests_match(store, runs["split"][0], tmp_path)
    assert_no_running_runs(store)
