"""The W&B mirror: the real `mlflow run` in offline mode, checked by reading the offline run
files (`run-<id>.wandb`) back, and the online mode's missing-key failure. Nothing here can
reach a W&B server: offline mode opens no socket, WANDB_BASE_URL points at a closed loopback
port, and HOME (hence ~/.netrc and wandb's caches) is a temporary folder.

The whole-pipeline mirror is checked on the session's trained store, which `make retrain`
made with `wandb=offline` (tests/conftest.py); the mirror's pure parts are unit-tested in
tests/integrations/test_wandb_mirror.py."""

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from wandb.proto import wandb_internal_pb2 as pb

from housing_mlops.data.source import sha256_file
from housing_mlops.integrations import wandb_mirror as mirror
from housing_mlops.pipeline import tracking
from housing_mlops.pipeline.dag import STEPS
from housing_mlops.tags import ERROR_TAG, KEY_TAG, UPSTREAM_TAG, WANDB_DIR_TAG, WANDB_RUN_TAG
from tests.conftest import Store, Trained, wandb_env

pytestmark = pytest.mark.e2e

# --- reading an offline run file ------------------------------------------------------------
# wandb 0.31 ships no Python reader for `.wandb` files (the old wandb.sdk.internal.datastore is
# gone; wandb-core writes them). The format is LevelDB's log format behind a 7-byte header:
# 32 KiB blocks of chunks [crc32 (of type byte + data), length, type] + data, each chunk one
# part (FULL, or FIRST/MIDDLE/LAST) of a serialized wandb_internal_pb2.Record.
_HEADER = struct.Struct("<4sHB")  # b":W&B", 0xBEE1, version 0
_CHUNK = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path: Path) -> list[pb.Record]:
    data = path.read_bytes()
    assert _HEADER.unpack_from(data) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B run file"
    records, parts, pos = [], b"", _HEADER.size
    while pos + _CHUNK.size <= len(data):
        if _BLOCK - pos % _BLOCK < _CHUNK.size:  # a block's tail too short for a chunk is padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += _BLOCK - pos % _BLOCK
            continue
        chunk = data[pos + _CHUNK.size : pos + _CHUNK.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"{path}: bad checksum at byte {pos}"
        pos += _CHUNK.size + length
        parts = chunk if kind in (_FULL, _FIRST) else parts + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


@dataclass
class OfflineRun:
    folder: Path
    id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    notes: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[pb.ArtifactRecord] = field(default_factory=list)
    exit_code: int | None = None


def read_run(folder: Path) -> OfflineRun:
    (path,) = folder.glob("run-*.wandb")
    run = OfflineRun(folder)
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.project, run.group, run.job_type = r.run_id, r.project, r.run_group, r.job_type
            run.name, run.notes = r.display_name, r.notes
            run.config = {u.key: json.loads(u.value_json) for u in r.config.update if u.key != "_wandb"}
        elif kind == "summary":
            run.summary |= {u.key: json.loads(u.value_json) for u in record.summary.update if u.key}
        elif kind == "artifact":
            run.artifacts.append(record.artifact)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.summary = {k: v for k, v in run.summary.items() if not k.startswith("_")}  # _runtime, _wandb
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    return [read_run(folder) for folder in sorted((wandb_dir / "wandb").glob("offline-run-*"))]


def wandb_store(store: Store, tmp_path: Path, mode: str) -> Path:
    """Point every W&B location of `store`'s subprocesses into tmp_path; return WANDB_DIR."""
    wandb_dir = tmp_path / "wandb-dir"
    env = wandb_env(store.env, tmp_path / "home", wandb_dir, mode)
    store.env.clear()
    store.env.update(env)
    return wandb_dir


# --- end to end -----------------------------------------------------------------------------


def test_offline_mirror_of_every_step_and_trial(trained: Trained) -> None:
    # the trained store's `make retrain` ran with WANDB_MODE=disabled (what `make` exports):
    # `wandb=offline` in the config must win
    store, wandb_dir = trained.store, trained.wandb_dir
    assert "W&B offline run" in trained.stdout
    assert "warning: W&B" not in trained.stderr

    (pipeline,) = [r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true"]
    group = pipeline.info.run_id
    steps = {name: store.runs(name)[0] for name in STEPS}
    assert all(len(store.runs(name)) == 1 for name in STEPS)
    (sweep,) = store.runs("sweep")
    trials = {
        r.info.run_name: r
        for r in store.runs()
        if r.data.tags.get("mlflow.parentRunId") == sweep.info.run_id and "housing.trial" in r.data.tags
    }
    assert len(trials) == 4, sorted(trials)

    runs = offline_runs(wandb_dir)
    assert len(runs) == len(STEPS) + len(trials), [(r.job_type, r.name) for r in runs]
    assert {r.group for r in runs} == {group}
    assert {r.project for r in runs} == {"housing-mlops"}

    by_step = {r.job_type: r for r in runs if r.job_type != mirror.TRIAL_JOB}
    assert sorted(by_step) == sorted(STEPS)
    for name, mlflow_run in steps.items():
        wb, tags = by_step[name], mlflow_run.data.tags
        assert (wb.id, wb.name, wb.exit_code, wb.notes) == (mlflow_run.info.run_id, name, 0, "")
        assert tags[WANDB_RUN_TAG] == f"housing-mlops/{wb.id}"
        assert Path(tags[WANDB_DIR_TAG]) == wb.folder
        # config: the step's config sections and the upstream runs it read
        upstream = {k.removeprefix(UPSTREAM_TAG): v for k, v in tags.items() if k.startswith("housing.upstream.")}
        assert wb.config["upstream"] == upstream
        assert sorted(upstream) == sorted(STEPS[name].upstream)
        assert {"step", "upstream", "mlflow", "params", *STEPS[name].config} == set(wb.config)
        assert wb.config["mlflow"]["cache_key"] == tags[KEY_TAG]
        assert wb.config["params"] == mlflow_run.data.params
        # summary: the run's metrics
        assert wb.summary == pytest.approx(mlflow_run.data.metrics), name
        # the digested outputs, as one artifact whose staged files `wandb sync` uploads
        digests = tracking.digests(mlflow_run)
        (artifact,) = wb.artifacts
        assert (artifact.name, artifact.type) == (f"{name}-outputs", mirror.ARTIFACT_TYPE)
        assert json.loads(artifact.metadata)["sha256"] == digests
        assert sorted(c.path for c in artifact.manifest.contents) == sorted(digests)
        # every declared output, and an optional one when the step made it (the sweep's predictions)
        assert set(STEPS[name].outputs) <= set(digests) <= set(STEPS[name].outputs + STEPS[name].optional)
        for content in artifact.manifest.contents:
            assert sha256_file(Path(content.local_path)) == digests[content.path]
            assert Path(content.local_path).is_relative_to(wandb_dir.parent)
    assert by_step["split"].config["split"] == {"test_size": 0.2, "seed": 42}
    assert by_step["sweep"].config["sweep"]["n_trials"] == 4
    assert by_step["ingest"].summary["rows"] == 2000

    by_trial = {r.name: r for r in runs if r.job_type == mirror.TRIAL_JOB}
    assert sorted(by_trial) == sorted(trials)
    for name, mlflow_trial in trials.items():
        wb = by_trial[name]
        state = mlflow_trial.data.tags["housing.trial.state"]
        assert wb.id == f"{sweep.info.run_id}-trial-{int(mlflow_trial.data.tags['housing.trial']):03d}"
        assert wb.summary.pop("state") == state
        assert wb.exit_code == (1 if state == "FAIL" else 0)
        assert wb.summary == pytest.approx(mlflow_trial.data.metrics)
        assert "fold_0_wmape" in wb.summary
        assert "duration_s" in wb.summary
        optuna_meta = wb.config.pop("optuna")
        assert optuna_meta["sweep_run_id"] == sweep.info.run_id
        assert optuna_meta["study"] == sweep.data.params["study_name"]
        assert {k: str(v) for k, v in wb.config.items()} == mlflow_trial.data.params
        assert not wb.artifacts


def test_step_alone_failed_step_and_mirror_error(store: Store, tmp_path: Path) -> None:
    # WANDB_MODE=online in the environment must not override `wandb=offline` (no key is set)
    wandb_dir = wandb_store(store, tmp_path, "online")
    store.mlflow_run("-e", "ingest", "--experiment-name", "housing-mlops", hydra="wandb=offline")
    (ingest,) = store.runs("ingest")
    (wb,) = offline_runs(wandb_dir)
    assert (wb.id, wb.group, wb.job_type) == (ingest.info.run_id, ingest.info.run_id, "ingest")
    assert ingest.data.tags[WANDB_RUN_TAG] == f"housing-mlops/{ingest.info.run_id}"

    # the mirror cannot write: the step still finishes, with one warning and no W&B tag
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    done = store.mlflow_run(
        "-e", "ingest", "--experiment-name", "housing-mlops", hydra=f"wandb=offline wandb.dir={blocked}/sub"
    )
    (warning,) = [line for line in done.stderr.splitlines() if "W&B" in line]
    assert warning.startswith("warning: W&B mirror of step 'ingest' failed after 0 of 1 run(s)")
    again = store.runs("ingest")[0]
    assert again.info.run_id != ingest.info.run_id
    assert again.info.status == "FINISHED"
    assert WANDB_RUN_TAG not in again.data.tags
    assert len(offline_runs(wandb_dir)) == 1

    # a failed step: a failed W&B run carrying the error, and no artifact
    missing = tmp_path / "missing.csv"
    done = store.mlflow_run(
        "-e", "ingest", "--experiment-name", "housing-mlops", hydra=f"wandb=offline data.source={missing}", check=False
    )
    assert done.returncode != 0
    failed = store.runs("ingest")[0]
    assert failed.info.status == "FAILED"
    (wb,) = [r for r in offline_runs(wandb_dir) if r.id == failed.info.run_id]
    assert (wb.exit_code, wb.notes, wb.artifacts) == (1, failed.data.tags[ERROR_TAG], [])
    assert str(missing) in wb.notes
    assert failed.data.tags[WANDB_RUN_TAG] == f"housing-mlops/{wb.id}"


def test_online_without_api_key_fails_before_any_step(store: Store, tmp_path: Path) -> None:
    wandb_dir = wandb_store(store, tmp_path, "online")
    done = store.mlflow_run(hydra="wandb=online", check=False)
    assert done.returncode != 0
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "WANDB_API_KEY" in line
    assert "wandb.mode" in line
    assert store.runs() == [], "no pipeline or step run was created"

    # a step run alone fails before its body too
    done = store.mlflow_run("-e", "ingest", "--experiment-name", "housing-mlops", hydra="wandb=online", check=False)
    assert done.returncode != 0
    assert "WANDB_API_KEY" in done.stderr
    assert store.runs("ingest") == []
    (launcher,) = store.runs()
    assert launcher.info.status == "FAILED"
    assert "WANDB_API_KEY" in launcher.data.tags[ERROR_TAG]
    assert not any(wandb_dir.iterdir()), "nothing was written for W&B"
