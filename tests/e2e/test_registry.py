"""The whole pipeline on the sample (the session's `trained` store, made by `make retrain`),
then the registry: aliases, the gate, the cache, manual promotion and rollback, batch
prediction and serving (`make serve`: MLflow's scoring app, steps/serve.py).

Tests that only read the trained store share it; tests that add runs, versions or aliases
work on a copy of it (`Trained.copy`)."""

import json
import math
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from housing_mlops.config.schema import Config
from housing_mlops.tags import REFERENCE_SOURCE_TAG
from tests.conftest import FAST_OPTIONS, MODEL, TRAINED_HYDRA, Store, Trained, assert_digests_match, retrain
from tests.e2e.served import frame_body, post, serving

pytestmark = pytest.mark.e2e
STEPS = ("ingest", "split", "impute", "features", "select", "sweep", "register")


def version(store: Store, alias: str) -> str:
    return str(store.client.get_model_version_by_alias(MODEL, alias).version)


def use_store(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process MLflow calls (pyfunc, model info) read `store` too."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    mlflow.set_tracking_uri(store.uri)


def pipeline_runs(store: Store) -> list:
    return [r for r in store.runs() if r.data.tags.get("housing.pipeline") == "true"]


def test_a_clean_run_prints_no_library_warning(trained: Trained) -> None:
    # The README's output: `[step]` lines, then `warning:` / `error:` lines a user can act on.
    # A library's warning (its file, line and category, once per fold fit) is neither. Each had
    # a cause: the neighbour means unscaled for ridge and lasso, the imputer's deliberate single
    # round, MLflow's two local-file dataset sources, Optuna's experimental plots, the grid winner's K.
    noise = [line for line in trained.stderr.splitlines() if re.search(r"\b\w*Warning: ", line)]
    assert noise == []


def test_pipeline_chains_steps_and_registers_a_documented_champion(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cfg: Config
) -> None:
    store, client = trained.store, trained.store.client
    use_store(store, monkeypatch)
    for step in STEPS:
        assert f"[{step}] running" in trained.stdout, step
    steps = {r.data.tags["housing.step"]: r for r in store.runs() if "housing.step" in r.data.tags}
    assert set(steps) == set(STEPS)
    (parent,) = pipeline_runs(store)
    assert {r.data.tags["mlflow.parentRunId"] for r in steps.values()} == {parent.info.run_id}
    for name, run in steps.items():
        assert run.info.status == "FINISHED", name
        assert_digests_match(store, run, tmp_path)
        assert parent.data.tags[f"housing.step.{name}"] == "ran"
        assert parent.data.tags[f"housing.step.{name}.run_id"] == run.info.run_id
    # each step reads the runs the orchestrator handed it
    assert steps["split"].data.tags["housing.upstream.ingest"] == steps["ingest"].info.run_id
    assert steps["sweep"].data.tags["housing.upstream.select"] == steps["select"].info.run_id
    assert steps["split"].data.metrics == {"train_rows": 1600.0, "test_rows": 400.0}
    assert steps["ingest"].data.metrics["rows"] == 2000
    assert steps["ingest"].inputs.dataset_inputs, "ingest logs its dataset with mlflow.log_input"
    profile = client.download_artifacts(steps["ingest"].info.run_id, "profile.json", str(tmp_path))
    assert json.loads(Path(profile).read_text())["total_bedrooms"]["missing"] > 0
    pipeline = client.download_artifacts(parent.info.run_id, "pipeline.json", str(tmp_path))
    assert [s["status"] for s in json.loads(Path(pipeline).read_text())["steps"]] == ["ran"] * len(STEPS)

    children = {r.data.tags["mlflow.parentRunId"] for r in store.runs() if "mlflow.parentRunId" in r.data.tags}
    candidates = [r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") == steps["select"].info.run_id]
    assert len(candidates) == 5
    assert steps["select"].info.run_id in children
    trials = [r for r in store.runs() if r.data.tags.get("mlflow.parentRunId") == steps["sweep"].info.run_id]
    assert len(trials) == 4

    best = yaml.safe_load(
        Path(client.download_artifacts(steps["sweep"].info.run_id, "best_params.yaml", str(tmp_path))).read_text()
    )
    assert best["cv"]["wmape"] <= best["grid_cv_wmape"]  # trial 0 is the grid winner: never worse
    assert best["grid_cv_wmape"] == pytest.approx(steps["sweep"].data.metrics["grid_cv_wmape"], abs=1e-6)
    assert best["study"]["trials"]["complete"] + best["study"]["trials"]["pruned"] <= 4
    # the monitoring reference takes the sweep's out-of-fold predictions when it has them (a family
    # grown in rungs, folds and seed as the reference's) instead of refitting the same folds
    # (staged trials leave theirs; an average of trials always has its own)
    swept = "housing.digest.oof_predictions.npy" in steps["sweep"].data.tags
    members = [m["trial"] for m in best.get("members", [])]
    assert swept == (cfg.models.zoo[best["family"]].fidelity is not None or bool(members))
    which = f"average of trials {members}" if members else f"trial {best['study']['best_trial']}"
    expected = f"the sweep's {which}" if swept else "2 folds refitted"
    assert steps["register"].data.tags[REFERENCE_SOURCE_TAG] == expected

    assert version(store, "champion") == version(store, "challenger") == "1"
    v1 = client.get_model_version(MODEL, "1")
    for section in ("CV on train", "Promotion gate", "Served variant", "Hardware target and cost", "Lineage", "sha256"):
        assert section in v1.description
    assert parent.info.run_id in v1.description
    for tag in (
        "test.wmape",
        "test.rmse",
        "algorithm",
        "data.sha256",
        "git.sha",
        "hardware.target",
        "hardware.cpu_p95_ms",
        "hardware.size_mb",
        "hardware.cost.cpu.usd_per_million",
        "hardware.isa",
        "hardware.cpu_model",
    ):
        assert tag in v1.tags, tag
    assert v1.tags["hardware.target"] in {"cpu", "cpu-amx", "gpu", "tpu", "edge"}
    # the compiled graph agrees with the Pipeline and is the faster variant: it is what is served
    assert v1.tags["serving.variant"] == v1.tags["hardware.served"] == "onnx"
    assert float(v1.tags["serving.parity_max_rel_error"]) <= float(v1.tags["serving.parity_tolerance"])
    assert int(v1.tags["serving.parity_rows"]) == 400 + 6 + 400  # test set, odd rows, each alone, each test row alone
    assert type(mlflow.pyfunc.load_model(f"models:/{MODEL}/1")._model_impl).__name__ == "CompiledModel"
    assert 0 < float(v1.tags["test.wmape"]) < 1
    assert math.isfinite(float(v1.tags["test.rmse"]))
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert info.metadata["hardware"]["target"] == v1.tags["hardware.target"]
    assert {c["name"] for c in info.signature.inputs.to_dict()} >= {"total_bedrooms", "ocean_proximity"}
    promotion = client.download_artifacts(steps["register"].info.run_id, "promotion.json", str(tmp_path))
    assert json.loads(Path(promotion).read_text())["promote"] is True

    first = trained.summary
    assert "| register | ran |" in first
    assert "Promotion verdict:** promote" in first
    assert "Registered version:** `housing_price_model` v1 (new)" in first
    assert "Hardware target:**" in first


def test_nothing_changed_retrain_reuses_every_step_and_registers_nothing(trained: Trained, tmp_path: Path) -> None:
    store = trained.copy(tmp_path / "store")
    first = pipeline_runs(store)[0]
    again = retrain(store, tmp_path / "summary-2.md")
    assert "running" not in again.stdout
    assert len(store.client.search_model_versions(f"name='{MODEL}'")) == 1
    second = (tmp_path / "summary-2.md").read_text()
    assert "Every step was cached" in second
    assert "v1 (cached: nothing new registered)" in second
    assert "Champion now:** v1" in second
    assert version(store, "champion") == "1"
    # each reuse is recorded on the new parent run; no step has a second run
    newest = pipeline_runs(store)[0]
    assert newest.info.run_id != first.info.run_id
    for step in STEPS:
        (run,) = store.runs(step)
        assert newest.data.tags[f"housing.step.{step}"] == "cached"
        assert (
            newest.data.tags[f"housing.step.{step}.run_id"]
            == run.info.run_id
            == first.data.tags[f"housing.step.{step}.run_id"]
        )


def test_a_class_that_does_not_import_stops_the_pipeline_before_its_step(trained: Trained, tmp_path: Path) -> None:
    """The zoo's classes are checked before the first model step that runs, not at start-up
    (a fully cached re-run never imports scikit-learn): the error names the key, select never starts."""
    store = trained.copy(tmp_path / "store")
    typo = "models.zoo.lasso.estimator=sklearn.linear_model.Lassso"
    done = store.mlflow_run(hydra=f"{TRAINED_HYDRA} {typo}", check=False)
    assert done.returncode != 0
    assert "models.zoo.lasso.estimator" in done.stderr
    assert "an importable class" in done.stderr
    assert "[select] running" not in done.stderr + done.stdout
    assert len(store.runs("select")) == 1  # the trained store's own
    assert len(store.client.search_model_versions(f"name='{MODEL}'")) == 1


def test_unseen_category_and_missing_values_are_predicted(trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unseen `ocean_proximity` and a missing `total_rooms` (or every numeric value missing)
    give finite, plausible prices, the same through the pyfunc (the compiled variant, as served)
    and through the sklearn Pipeline itself, within the parity tolerance."""
    use_store(trained.store, monkeypatch)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    table = pd.read_csv(trained.store.env["HOUSING_DATA_SOURCE"])
    rows = table.drop(columns="median_house_value").head(20)
    odd = rows.assign(ocean_proximity="ON MARS", total_rooms=float("nan"))
    predicted = np.asarray(model.predict(odd), dtype=float)
    assert predicted.shape == (20,)
    assert np.isfinite(predicted).all(), predicted
    low, high = table["median_house_value"].min(), table["median_house_value"].max()
    assert ((predicted > low / 2) & (predicted < high * 1.5)).all(), (predicted, low, high)
    pipeline = mlflow.sklearn.load_model(f"models:/{MODEL}@champion")
    tolerance = float(
        trained.store.client.get_model_version_by_alias(MODEL, "champion").tags["serving.parity_tolerance"]
    )
    assert predicted == pytest.approx(pipeline.predict(odd), rel=tolerance)
    empty = odd.assign(**{c: float("nan") for c in odd.columns if c != "ocean_proximity"})
    for batch in (empty, empty.head(1)):  # sklearn's imputer treats an all-missing batch apart
        assert model.predict(batch) == pytest.approx(pipeline.predict(batch), rel=tolerance)
    # the odd values reach the model: these are not the predictions for the rows as they were
    assert not np.allclose(predicted, np.asarray(model.predict(rows), dtype=float))


# -- promotion, rollback, predict and serving on a copy of the trained store -------------------


def test_worse_model_is_held_and_promotion_rollback_predict_and_serving_follow_the_alias(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = trained.copy(tmp_path / "store")
    use_store(store, monkeypatch)
    client = store.client
    # a deliberately degraded model: a heavily regularised linear model only
    degraded = f"{FAST_OPTIONS} models.candidates=[lasso] models.zoo.lasso.fast.alpha=[100000.0]"
    again = store.mlflow_run(hydra=degraded)
    assert "[features] cached" in again.stdout
    assert "[select] running" in again.stdout
    assert version(store, "challenger") == "2"
    assert version(store, "champion") == "1"
    v2 = client.get_model_version(MODEL, "2")
    assert v2.tags["promotion.verdict"] == "hold"
    assert "does not beat champion v1 by registry.min_improvement 0.0: wMAPE difference" in v2.tags["promotion.reason"]
    assert "(95 % paired bootstrap, 2,000 resamples, seed 42)" in v2.tags["promotion.reason"]
    # the degraded model is worse with 95 % confidence: the whole interval is above 0
    delta = {k: float(v2.tags[f"promotion.delta_{k}"]) for k in ("low", "wmape", "high")}
    assert 0 < delta["low"] <= delta["wmape"] <= delta["high"]
    assert "promotion.delta_wmape" not in client.get_model_version(MODEL, "1").tags  # v1 had no champion

    table = pd.read_csv(store.env["HOUSING_DATA_SOURCE"])
    rows = table.drop(columns="median_house_value").head(200)
    expected = {v: list(mlflow.pyfunc.load_model(f"models:/{MODEL}/{v}").predict(rows)) for v in ("1", "2")}
    assert expected["1"] != pytest.approx(expected["2"], rel=1e-3), "the two versions must be told apart"
    odd = rows.head(5).assign(ocean_proximity="ON MARS", total_rooms=float("nan"))
    odd_expected = list(mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(odd))

    # the served champion (v1) scores rows as the registered model does and rejects bad input
    with serving(store) as url:
        status, body = post(url, frame_body(rows))
        assert status == 200
        predictions = body["predictions"]
        assert len(predictions) == 200
        assert all(10_000 < p < 1_000_000 for p in predictions)
        assert predictions == pytest.approx(expected["1"], rel=1e-9)
        status, body = post(url, frame_body(odd))
        assert status == 200
        assert all(math.isfinite(p) for p in body["predictions"])
        assert body["predictions"] == pytest.approx(odd_expected, rel=1e-9)
        # the compiled variant answers rows with nothing known as the sklearn Pipeline does
        empty = odd.assign(**{c: float("nan") for c in odd.columns if c != "ocean_proximity"})
        sklearn_v1 = mlflow.sklearn.load_model(f"models:/{MODEL}/1")
        for batch in (empty, empty.head(1)):
            status, body = post(url, frame_body(batch))
            assert status == 200
            assert body["predictions"] == pytest.approx(list(sklearn_v1.predict(batch)), rel=1e-4)
        assert post(url, b"{not json")[0] == 400
        assert post(url, frame_body(rows.drop(columns="median_income")))[0] == 400
        text = rows.astype({"median_income": object})
        text.loc[text.index[0], "median_income"] = "lots"
        assert post(url, frame_body(text))[0] == 400

    # the gate refuses v2; forcing promotes it; `make serve` resolves @champion when it starts
    refused = store.mlflow_run("-e", "promote", "-P", "version=2", check=False)
    assert refused.returncode != 0
    assert "gate refused v2" in refused.stderr
    assert version(store, "champion") == "1"
    store.mlflow_run("-e", "promote", "-P", "version=2", "-P", "force=true")
    assert version(store, "champion") == "2"
    with serving(store) as url:
        status, body = post(url, frame_body(rows))
    assert status == 200
    assert body["predictions"] == pytest.approx(expected["2"], rel=1e-9)

    # rollback points champion back at v1, and a restarted server serves it again
    store.mlflow_run("-e", "rollback")
    assert version(store, "champion") == "1"
    assert json.loads(client.get_registered_model(MODEL).tags["champion_history"]) == ["1"]
    with serving(store) as url:
        status, body = post(url, frame_body(rows))
    assert status == 200
    assert body["predictions"] == pytest.approx(expected["1"], rel=1e-9)

    # a champion set by hand (as in the UI) is what predict uses
    client.set_registered_model_alias(MODEL, "champion", "2")
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows.head(20).to_csv(source, index=False)
    store.mlflow_run("-e", "predict", "-P", f"input={source}", "-P", f"output={out}")
    scored = pd.read_csv(out)
    assert len(scored) == 20
    assert set(scored["model_version"].astype(str)) == {"2"}
    assert list(scored["prediction"]) == pytest.approx(expected["2"][:20], rel=1e-9)
