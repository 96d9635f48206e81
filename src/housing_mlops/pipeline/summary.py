"""The retraining summary: the newest pipeline run as Markdown, for $GITHUB_STEP_SUMMARY."""

import json
from pathlib import Path

import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from housing_mlops.tags import MODEL_VERSION_TAG, PIPELINE_TAG

METRICS = ("wmape", "rmse", "mae", "r2", "mape")


def markdown_table(rows: list[dict[str, str]]) -> str:
    """Markdown table of preformatted cells, unpadded: one short line per row in a CI log."""
    return str(pd.DataFrame(rows).to_markdown(index=False, stralign=None, disable_numparse=True))


def retrain_summary(client: MlflowClient, experiment: str, model_name: str) -> str:
    """The newest pipeline run's steps and, when it registered, the model's metrics and verdict."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id] if found else [],
        filter_string=f"tags.`{PIPELINE_TAG}` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return "## Retraining\n\nNo pipeline run found.\n"
    parent = runs[0]
    steps = json.loads(Path(client.download_artifacts(parent.info.run_id, "pipeline.json")).read_text())["steps"]
    cached = all(s["status"] == "cached" for s in steps)
    rows = [
        {
            "step": s["step"],
            "ran / cached": s["status"],
            "duration (s)": f"{s['duration_s']:.1f}",
            "run": f"`{s['run_id']}`",
        }
        for s in steps
    ]
    lines = [f"## Retraining: pipeline run `{parent.info.run_id}` ({parent.info.status})", "", markdown_table(rows), ""]
    if cached:
        lines += ["Every step was cached: nothing changed since the last retraining.", ""]
    by_step = {s["step"]: client.get_run(s["run_id"]) for s in steps}
    if "register" in by_step:
        lines += _registered(client, model_name, by_step["register"], by_step.get("sweep"), cached)
    return "\n".join(lines) + "\n"


def _registered(client: MlflowClient, model_name: str, register: Run, sweep: Run | None, cached: bool) -> list[str]:
    """Metrics (CV on train beside test), the registered version, its verdict and hardware target."""
    version = register.data.tags.get(MODEL_VERSION_TAG)
    tags = client.get_model_version(model_name, version).tags if version else {}
    cv = sweep.data.metrics.get("best_cv_wmape") if sweep else None
    rows = [
        {
            "metric": m,
            "CV (train)": f"{cv:.4f}" if m == "wmape" and cv is not None else "",
            "test": f"{register.data.metrics[f'test_{m}']:.4f}",
        }
        for m in METRICS
    ]
    champion = client.get_model_version_by_alias(model_name, "champion").version if tags else "none"
    freshness = "cached: nothing new registered" if cached else "new"
    return [
        markdown_table(rows),
        "",
        f"**Registered version:** `{model_name}` v{version} ({freshness})",
        f"**Promotion verdict:** {tags.get('promotion.verdict', '?')}: {tags.get('promotion.reason', '')}",
        f"**Champion now:** v{champion}",
        f"**Hardware target:** {tags.get('hardware.target', '?')} "
        f"(CPU p95 {tags.get('hardware.cpu_p95_ms', '?')} ms, {tags.get('hardware.size_mb', '?')} MB)",
    ]
