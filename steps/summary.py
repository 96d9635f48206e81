"""Markdown summary of the newest pipeline run, for $GITHUB_STEP_SUMMARY (`make retrain`)."""

import json
import sys
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.pipeline.tracking import tracking_uri
from housing_mlops.tags import MODEL_VERSION_TAG

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("wmape", "rmse", "mae", "r2", "mape")


def summary(client: MlflowClient, experiment: str, model_name: str) -> str:
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id] if found else [],
        filter_string="tags.`housing.pipeline` = 'true'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return "## Retraining\n\nNo pipeline run found.\n"
    parent = runs[0]
    steps = json.loads(Path(client.download_artifacts(parent.info.run_id, "pipeline.json")).read_text())["steps"]
    lines = [
        f"## Retraining: pipeline run `{parent.info.run_id}` ({parent.info.status})",
        "",
        "| step | ran / cached | duration (s) | run |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['step']} | {s['status']} | {s['duration_s']:.1f} | `{s['run_id']}` |" for s in steps]
    cached = all(s["status"] == "cached" for s in steps)
    lines += ["", "Every step was cached: nothing changed since the last retraining." if cached else ""]
    by_step = {s["step"]: client.get_run(s["run_id"]) for s in steps}
    if "register" in by_step:
        register = by_step["register"]
        version = register.data.tags.get(MODEL_VERSION_TAG)
        tags = client.get_model_version(model_name, version).tags if version else {}
        sweep = by_step.get("sweep")
        cv = sweep.data.metrics.get("best_cv_wmape") if sweep else None
        lines += ["| metric | CV (train) | test |", "|---|---|---|"]
        lines += [
            f"| {m} | {cv:.4f} | {register.data.metrics[f'test_{m}']:.4f} |"
            if m == "wmape" and cv is not None
            else f"| {m} | | {register.data.metrics[f'test_{m}']:.4f} |"
            for m in METRICS
        ]
        champion = client.get_model_version_by_alias(model_name, "champion").version if tags else "none"
        freshness = "cached: nothing new registered" if cached else "new"
        lines += [
            "",
            f"**Registered version:** `{model_name}` v{version} ({freshness})",
            f"**Promotion verdict:** {tags.get('promotion.verdict', '?')}: {tags.get('promotion.reason', '')}",
            f"**Champion now:** v{champion}",
            f"**Hardware target:** {tags.get('hardware.target', '?')} "
            f"(p95 {tags.get('hardware.latency_p95_ms', '?')} ms, {tags.get('hardware.size_mb', '?')} MB)",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    cfg, _ = load_config(ROOT / "config", parse_overrides(" ".join(sys.argv[1:])))
    mlflow.set_tracking_uri(tracking_uri(ROOT))
    sys.stdout.write(summary(MlflowClient(), cfg.tracking.experiment_name, cfg.registry.model_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
