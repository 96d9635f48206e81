"""Two whole pipelines at once on one fresh SQLite store (the real `mlflow run` on the sample),
and two cold runs that must agree bit for bit: the first of these pipelines and the session's
trained store. Apart from test_faults.py so that these pipelines run on one xdist worker while
the other builds the trained store."""

from pathlib import Path

import pytest

from housing_mlops.registry.store import CHAMPION
from tests.conftest import Store, Trained, assert_digests_match, make_store
from tests.e2e.test_faults import (
    LAST_BIT_NOISE,
    STEPS,
    TIMING_METRICS,
    alias,
    all_runs,
    assert_no_running_runs,
    assert_registry_consistent,
    finish,
    start,
    step_runs,
    study_of,
)

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


# -- two pipelines at once; determinism --------------------------------------------------------


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> tuple[Store, list[tuple[int, str, str]]]:
    """Two whole pipelines started at the same moment on one fresh SQLite store."""
    folder = tmp_path_factory.mktemp("concurrent")
    store = make_store(folder, sample_csv)
    processes = [start(store, folder / f"pipeline-{i}") for i in range(2)]
    return store, [finish(p) for p in processes]


@pytest.mark.slow
def test_two_pipelines_at_once_share_one_store_consistently(concurrent, tmp_path: Path) -> None:
    store, results = concurrent
    for code, out, err in results:
        assert code == 0, f"{out[-2000:]}\n{err[-4000:]}"
    assert_no_running_runs(store)
    for run in all_runs(store):
        # a pruned trial's run is KILLED by design; everything else finished
        expected = "KILLED" if run.data.tags.get("housing.trial.state") == "PRUNED" else "FINISHED"
        assert run.info.status == expected, f"{run.info.run_name} {run.info.run_id}: {run.info.status}"
    # each step ran once: the second pipeline waited for the first and reused its runs
    runs = step_runs(store)
    assert {step: len(runs[step]) for step in STEPS} == dict.fromkeys(STEPS, 1)
    parents = [r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true"]
    assert len(parents) == 2
    for step in STEPS:
        assert {p.data.tags[f"housing.step.{step}.run_id"] for p in parents} == {runs[step][0].info.run_id}
    assert sorted(p.data.tags["housing.step.register"] for p in parents) == ["cached", "ran"]
    for (run,) in runs.values():
        assert_digests_match(store, run, tmp_path)
    assert len(study_of(store).trials) == 4
    # registry consistent: one model, one version, complete, champion and challenger
    (version,) = assert_registry_consistent(store)
    assert str(alias(store, CHAMPION).version) == str(version.version) == "1"


def fingerprint(store: Store) -> dict[str, dict]:
    """Per step run and nested run: digests, params and metrics other than TIMING_METRICS."""
    prints: dict[str, dict] = {}
    step_of = {}
    for run in store.runs():
        if "housing.step" in run.data.tags:
            step_of[run.info.run_id] = run.data.tags["housing.step"]
    for run in store.runs():
        tags = run.data.tags
        if "housing.step" in tags:
            name, skip = tags["housing.step"], TIMING_METRICS.get(tags["housing.step"], set())
        elif "housing.trial" in tags:
            name, skip = f"sweep.trial.{tags['housing.trial']}", TIMING_METRICS["sweep.trial"]
        elif "housing.candidate" in tags:
            name, skip = f"select.candidate.{run.info.run_name}", TIMING_METRICS["select.candidate"]
        else:
            continue
        assert name not in prints, f"two runs of {name}"
        prints[name] = {
            "digests": {k: v for k, v in tags.items() if k.startswith("housing.digest.") or k == "housing.data.sha256"},
            # the cache key hashes the step's resolved config and code: the same key is the
            # same configuration, however the Hydra options were spelled on the command line
            "key": tags.get("housing.cache_key"),
            "params": {k: v for k, v in run.data.params.items() if k not in ("upstream", "hydra_options")},
            "metrics": {k: v for k, v in run.data.metrics.items() if k not in skip},
        }
    return prints


def test_two_cold_runs_with_one_seed_agree_exactly(concurrent, trained: Trained) -> None:
    """The trained store's `make retrain` and the first concurrent pipeline each ran every step
    cold, on their own store, with the same settings (the W&B mirror enters no cache key)."""
    first, second = fingerprint(trained.store), fingerprint(concurrent[0])
    assert set(first) == set(second)
    assert {s for s in first if "." not in s} == set(STEPS)
    assert all(first[s]["digests"] for s in STEPS)
    for name in sorted(first):
        if name in LAST_BIT_NOISE:
            assert first[name]["metrics"] == pytest.approx(second[name]["metrics"], rel=1e-12, abs=0), name
            first[name].pop("metrics"), second[name].pop("metrics")
        assert first[name] == second[name], name
    registered = [assert_registry_consistent(s)[0] for s in (trained.store, concurrent[0])]
    assert {k: v for k, v in registered[0].tags.items() if k.startswith("test.")} == {
        k: v for k, v in registered[1].tags.items() if k.startswith("test.")
    }
