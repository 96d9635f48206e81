"""The same inputs register the same model whatever the machine is doing: the sweep's budget is a
trial count, not a clock, so the session's trained store and a cold run of the same pipeline beside
two CPU-burning processes agree on every trial, the best parameters, the test metrics and the
fitted model's digest."""

import subprocess
from pathlib import Path

import pytest
import yaml
from benchmarks.processes import burners

from tests.conftest import FAST_OPTIONS, MODEL, Store, Trained, make_store

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]

COLD_TIMEOUT_S = 1500  # a cold run on the sample, on 2 cores shared with two burners


def outcome(store: Store, tmp_path: Path) -> dict[str, object]:
    """What the registered model is made of: trials, best parameters, test metrics, digest."""
    (sweep,) = store.runs("sweep")
    (register,) = store.runs("register")
    client = store.client
    best_params = client.download_artifacts(sweep.info.run_id, "best_params.yaml", str(tmp_path))
    best = yaml.safe_load(Path(best_params).read_text())
    tags = client.get_model_version(MODEL, "1").tags
    return {
        "trials": {k: v for k, v in sweep.data.metrics.items() if k.startswith("trials_")},
        "best": {k: best[k] for k in ("params", "cv", "feature_spec", "study")},
        "test": {k: v for k, v in register.data.metrics.items() if k.startswith("test_")},
        "digest": tags["model.sha256"],
        "verdict": tags["promotion.verdict"],
    }


def test_the_same_inputs_register_the_same_model_on_a_busy_machine(trained: Trained, tmp_path: Path) -> None:
    busy = make_store(tmp_path / "busy", Path(trained.store.env["HOUSING_DATA_SOURCE"]))
    with burners(2):
        done = subprocess.run(
            busy.command(hydra=FAST_OPTIONS), env=busy.env, capture_output=True, text=True, timeout=COLD_TIMEOUT_S
        )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    assert "reused []" in done.stdout  # cold: every step ran, none came from a cache
    quiet, loaded = outcome(trained.store, tmp_path / "quiet"), outcome(busy, tmp_path / "loaded")
    assert loaded["trials"] == quiet["trials"]
    assert loaded["best"] == quiet["best"]
    assert loaded["test"] == quiet["test"]  # full precision, not the rounded tags
    assert loaded["digest"] == quiet["digest"]
    assert loaded["verdict"] == quiet["verdict"] == "promote"
