"""The model version's description: a Markdown card a person reads in the MLflow UI."""

from typing import Any


def model_card(
    best: dict[str, Any],
    test: dict[str, float],
    lineage: dict[str, str],
    data: dict[str, Any],
    code: dict[str, str],
    hardware: dict[str, Any],
    verdict: dict[str, Any],
    trained_at: str,
) -> str:
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in sorted(best["params"].items()))
    metrics = "\n".join(
        f"| {name} | {best['cv'].get(name, float('nan')):.4f} | {test[name]:.4f} |"
        for name in ("wmape", "mae", "rmse", "r2", "mape", "median_ape", "within_10pct")
    )
    steps = "\n".join(f"| {step} | `{run_id}` |" for step, run_id in lineage.items())
    return f"""## {best["family"]} ({best["estimator"]})

Trained {trained_at} on {data["train_rows"]} rows; scored once on the sealed test set
({data["test_rows"]} rows). Fractions, not percents.

| metric | CV on train | test |
|---|---|---|
{metrics}

**Promotion gate:** {"promote" if verdict["promote"] else "hold"}: {verdict["reason"]}

**Hardware target:** `{hardware["target"]}`: {hardware["rationale"]}

### Hyperparameters
| parameter | value |
|---|---|
{params}

Geo clusters: K = {best["feature_spec"]["n_clusters"]}, gamma = {best["feature_spec"]["gamma"]:.4g};
imputer: {best["feature_spec"]["imputer"]["strategy"]}.
Sweep: study `{best["study"]["name"]}`, best trial {best["study"]["best_trial"]}, trials {best["study"]["trials"]}.

### Data
- raw data sha256 `{data["sha256"]}` ({data["rows"]} rows)
- train.parquet sha256 `{data["train_sha256"]}`, test.parquet sha256 `{data["test_sha256"]}`

### Lineage
| step | run id |
|---|---|
{steps}

Code: git `{code["sha"]}`{" (dirty working tree)" if code["dirty"] == "true" else ""}.
"""
