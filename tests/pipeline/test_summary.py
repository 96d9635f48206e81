"""The retraining summary, read from a real tracking store and registry."""

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.pipeline.summary import markdown_table, retrain_summary
from housing_mlops.pipeline.tracking import ensure_experiment
from housing_mlops.tags import MODEL_VERSION_TAG, PIPELINE_TAG

MODEL = "housing_price_model"
METRICS = {"test_wmape": 0.12, "test_rmse": 39000.0, "test_mae": 25000.0, "test_r2": 0.88, "test_mape": 0.15}


def _pipeline(client: MlflowClient, experiment_id: str, status: str) -> None:
    steps = []
    for step in ("sweep", "register"):
        run = client.create_run(experiment_id, run_name=step)
        if step == "sweep":
            client.log_metric(run.info.run_id, "best_cv_wmape", 0.1234)
        else:
            for name, value in METRICS.items():
                client.log_metric(run.info.run_id, name, value)
            client.set_tag(run.info.run_id, MODEL_VERSION_TAG, "1")
            if not client.search_registered_models(f"name='{MODEL}'"):
                client.create_registered_model(MODEL)
                tags = {"promotion.verdict": "promote", "promotion.reason": "first model", "hardware.target": "cpu"}
                client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run.info.run_id, tags=tags)
                client.set_registered_model_alias(MODEL, "champion", "1")
        steps.append({"step": step, "status": status, "run_id": run.info.run_id, "duration_s": 2.25})
    with mlflow.start_run(experiment_id=experiment_id):
        mlflow.set_tag(PIPELINE_TAG, "true")
        mlflow.log_dict({"steps": steps}, "pipeline.json")


def test_summary_of_a_new_then_a_cached_retraining(tmp_path: Path) -> None:
    client = MlflowClient()
    assert retrain_summary(client, "housing-mlops", MODEL) == "## Retraining\n\nNo pipeline run found.\n"
    experiment_id = ensure_experiment(client, "housing-mlops")
    _pipeline(client, experiment_id, "ran")
    first = retrain_summary(client, "housing-mlops", MODEL)
    assert "| register | ran | 2.2 |" in first
    assert "| wmape | 0.1234 | 0.1200 |" in first
    assert "| rmse |  |" in first
    assert "**Registered version:** `housing_price_model` v1 (new)" in first
    assert "**Promotion verdict:** promote: first model" in first
    assert "**Champion now:** v1" in first
    assert "Every step was cached" not in first
    _pipeline(client, experiment_id, "cached")
    second = retrain_summary(client, "housing-mlops", MODEL)
    assert "Every step was cached" in second
    assert "v1 (cached: nothing new registered)" in second


def test_markdown_table_keeps_cells_as_given() -> None:
    lines = markdown_table([{"a": "1.50", "b": "`x`"}, {"a": "", "b": "y"}]).splitlines()
    assert lines[0] == "| a | b |"
    assert lines[2:] == ["| 1.50 | `x` |", "|  | y |"]
    assert set(lines[1]) == {"|", "-"}
