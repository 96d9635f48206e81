"""End to end: the real `mlflow run` against a temporary SQLite store, on a 2,000-row sample."""

import json
from pathlib import Path

import pytest

from housing_mlops.data.source import sha256_file
from tests.conftest import Store

pytestmark = pytest.mark.e2e
DATA_STEPS = ("-P", "steps=ingest,split")


def step_runs(store: Store, step: str) -> list:
    return store.runs(step)


def pipeline_runs(store: Store) -> list:
    return [r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true"]


def assert_artifacts_match_digests(store: Store, run, tmp_path: Path) -> None:
    digests = {
        k.removeprefix("housing.digest."): v for k, v in run.data.tags.items() if k.startswith("housing.digest.")
    }
    assert digests, f"run {run.info.run_id} has no digest tags"
    for name, digest in digests.items():
        path = store.client.download_artifacts(run.info.run_id, name, str(tmp_path))
        assert sha256_file(Path(path)) == digest


def test_pipeline_chains_steps_caches_and_reruns_only_downstream(store: Store, tmp_path: Path) -> None:
    first = store.mlflow_run(*DATA_STEPS)
    assert "[ingest] running" in first.stdout and "[split] running" in first.stdout
    (parent,) = pipeline_runs(store)
    (ingest,), (split,) = step_runs(store, "ingest"), step_runs(store, "split")
    for run in (ingest, split):
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert_artifacts_match_digests(store, run, tmp_path)
    assert split.data.tags["housing.upstream.ingest"] == ingest.info.run_id
    assert split.data.metrics == {"train_rows": 1600.0, "test_rows": 400.0}
    assert ingest.data.metrics["rows"] == 2000
    assert ingest.inputs.dataset_inputs, "ingest logs its dataset with mlflow.log_input"
    profile = store.client.download_artifacts(ingest.info.run_id, "profile.json", str(tmp_path))
    assert json.loads(Path(profile).read_text())["total_bedrooms"]["missing"] > 0
    pipeline = store.client.download_artifacts(parent.info.run_id, "pipeline.json", str(tmp_path))
    assert [s["status"] for s in json.loads(Path(pipeline).read_text())["steps"]] == ["ran", "ran"]

    # nothing changed: no step re-executes, each reuse is recorded on the new parent run
    second = store.mlflow_run(*DATA_STEPS)
    assert "running" not in second.stdout
    assert len(step_runs(store, "ingest")) == 1 and len(step_runs(store, "split")) == 1
    newest = pipeline_runs(store)[0]
    assert newest.data.tags["housing.step.split"] == "cached"
    assert newest.data.tags["housing.step.split.run_id"] == split.info.run_id

    # a split setting changes: split (forced or not) re-runs, ingest is reused
    store.mlflow_run(*DATA_STEPS, hydra="split.test_size=0.25 pipeline.force=[split]")
    assert len(step_runs(store, "ingest")) == 1
    resplit = step_runs(store, "split")[0]
    assert resplit.data.metrics["test_rows"] == 500.0
    assert resplit.data.tags["housing.upstream.ingest"] == ingest.info.run_id
    store.mlflow_run(*DATA_STEPS, hydra="split.test_size=0.25")
    assert len(step_runs(store, "split")) == 2, "the forced run is a valid cache entry"

    # one step on its own resolves its inputs from the newest cache-valid upstream run
    store.mlflow_run("-e", "split", "--experiment-name", "housing-mlops", hydra="split.seed=7")
    assert step_runs(store, "split")[0].data.tags["housing.upstream.ingest"] == ingest.info.run_id

    # steps=ingest with the cache off re-runs ingest only; same data gives the same digest
    store.mlflow_run("-P", "steps=ingest", hydra="pipeline.cache=false")
    reingest = step_runs(store, "ingest")
    assert len(reingest) == 2 and len(step_runs(store, "split")) == 3
    assert reingest[0].data.tags["housing.digest.raw.parquet"] == ingest.data.tags["housing.digest.raw.parquet"]


def test_step_alone_without_upstream_says_what_to_run(store: Store) -> None:
    done = store.mlflow_run("-e", "split", check=False)
    assert done.returncode != 0
    assert "no finished 'ingest' run matches the current config and code" in done.stderr
    assert step_runs(store, "ingest") == []


def test_config_error_fails_before_any_step(store: Store) -> None:
    done = store.mlflow_run(hydra="split.tset_size=0.3", check=False)
    assert done.returncode != 0
    assert "Key 'tset_size' not in 'SplitConfig'" in done.stderr and "split.tset_size" in done.stderr
    assert step_runs(store, "ingest") == [] and step_runs(store, "split") == []
