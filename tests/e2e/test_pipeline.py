"""End to end: the real `mlflow run` against a temporary SQLite store, on a 2,000-row sample:
the step cache, one step alone, and a config error. The first, cold pipeline run (chaining,
digests, lineage, pipeline.json) and its all-cached rerun are checked on the session's
trained store in test_registry.py."""

from pathlib import Path

import pytest

from tests.conftest import Store, Trained

pytestmark = pytest.mark.e2e
DATA_STEPS = ("-P", "steps=ingest,split")


def step_runs(store: Store, step: str) -> list:
    return store.runs(step)


def pipeline_runs(store: Store) -> list:
    return [r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true"]


def test_changed_settings_rerun_only_downstream_and_one_step_alone_finds_its_inputs(
    trained: Trained, tmp_path: Path
) -> None:
    """On a copy of the trained store (whose first run and all-cached rerun are checked in
    test_registry.py): what re-runs when a setting changes, is forced, or the cache is off."""
    store = trained.copy(tmp_path / "store")
    (ingest,), (split,) = step_runs(store, "ingest"), step_runs(store, "split")

    # a split setting changes: split (forced or not) re-runs, ingest is reused
    changed = store.mlflow_run(*DATA_STEPS, hydra="split.test_size=0.25 pipeline.force=[split]")
    assert f"[ingest] cached: reusing run {ingest.info.run_id}" in changed.stdout
    assert "[split] running" in changed.stdout
    assert len(step_runs(store, "ingest")) == 1
    resplit = step_runs(store, "split")[0]
    assert resplit.info.run_id != split.info.run_id
    assert resplit.data.metrics["test_rows"] == 500.0
    assert resplit.data.tags["housing.upstream.ingest"] == ingest.info.run_id
    unforced = store.mlflow_run(*DATA_STEPS, hydra="split.test_size=0.25")
    assert "running" not in unforced.stdout
    assert len(step_runs(store, "split")) == 2, "the forced run is a valid cache entry"
    assert pipeline_runs(store)[0].data.tags["housing.step.split.run_id"] == resplit.info.run_id

    # the steps run on the config the pipeline composed: a value that differs at each composition
    # (a fresh seed) is composed once, so the step's cache key is the one the pipeline expects
    store.mlflow_run(*DATA_STEPS, hydra="split.seed=${now:%S%f}")
    assert len(step_runs(store, "split")) == 3

    # one step on its own resolves its inputs from the newest cache-valid upstream run
    store.mlflow_run("-e", "split", "--experiment-name", "housing-mlops", hydra="split.seed=7")
    assert step_runs(store, "split")[0].data.tags["housing.upstream.ingest"] == ingest.info.run_id

    # steps=ingest with the cache off re-runs ingest only; same data gives the same digest
    store.mlflow_run("-P", "steps=ingest", hydra="pipeline.cache=false")
    reingest = step_runs(store, "ingest")
    assert len(reingest) == 2
    assert len(step_runs(store, "split")) == 4
    assert reingest[0].data.tags["housing.digest.raw.parquet"] == ingest.data.tags["housing.digest.raw.parquet"]


def test_step_alone_without_upstream_says_what_to_run(store: Store) -> None:
    done = store.mlflow_run("-e", "split", check=False)
    assert done.returncode != 0
    assert "no finished 'ingest' run matches the current config and code" in done.stderr
    assert step_runs(store, "ingest") == []


def test_config_error_fails_before_any_step(store: Store) -> None:
    done = store.mlflow_run(hydra="split.tset_size=0.3", check=False)
    assert done.returncode != 0
    assert "Key 'tset_size' not in 'SplitConfig'" in done.stderr
    assert "split.tset_size" in done.stderr
    assert step_runs(store, "ingest") == []
    assert step_runs(store, "split") == []
