"""What a person reads about a model version in the MLflow UI: its Markdown card and its tags."""

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from housing_mlops.registry import targets

# MLflow keeps a version's description in VARCHAR(5000): PostgreSQL and MySQL reject a longer one
# (SQLite does not check), which failed registration on a team's tracking server only.
DESCRIPTION_LIMIT = 5000
METRICS = ("wmape", "mae", "rmse", "r2", "mape", "median_ape", "within_10pct")
MISSING = "n/a"


def _table(frame: pd.DataFrame, **options: Any) -> str:
    return frame.to_markdown(index=False, tablefmt="github", **options)


def _number(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) else MISSING


def model_card(
    best: Mapping[str, Any],
    test: Mapping[str, float],
    lineage: Mapping[str, str],
    data: Mapping[str, Any],
    code: Mapping[str, str],
    hardware: Mapping[str, Any],
    serving: Mapping[str, Any],
    verdict: Mapping[str, Any],
    trained_at: str,
) -> str:
    """Markdown description of a version; a field missing from the inputs reads "n/a"."""
    cv = best.get("cv", {})
    metrics = pd.DataFrame(
        {
            "metric": METRICS,
            "CV on train": [cv.get(name, float("nan")) for name in METRICS],
            "test": [test.get(name, float("nan")) for name in METRICS],
        }
    )
    params = pd.DataFrame(
        [(f"`{k}`", f"`{v}`") for k, v in sorted(best.get("params", {}).items())],
        columns=["parameter", "value"],
    )
    steps = pd.DataFrame([(step, f"`{run_id}`") for step, run_id in lineage.items()], columns=["step", "run id"])
    spec, study = best.get("feature_spec", {}), best.get("study", {})
    gate = "promote" if verdict.get("promote") else "hold"
    dirty = " (dirty working tree)" if code.get("dirty") == "true" else ""
    return f"""## {best.get("family", MISSING)} ({best.get("estimator", MISSING)})

Trained {trained_at} on {data.get("train_rows", MISSING)} rows; scored once on the sealed test set
({data.get("test_rows", MISSING)} rows). Fractions, not percents.

{_table(metrics, floatfmt=".4f")}

**Promotion gate:** {gate}: {verdict.get("reason", MISSING)}

**Served variant:** `{serving.get("variant", MISSING)}`: {serving.get("why", MISSING)}

**Hardware target:** `{hardware.get("target", MISSING)}`: {hardware.get("rationale", MISSING)}

{targets.card_section(hardware) if "costs" in hardware else ""}

### Hyperparameters
{_table(params, disable_numparse=True)}

Geo clusters: K = {spec.get("n_clusters", MISSING)}, gamma = {_number(spec.get("gamma"), ".4g")};
imputer: {spec.get("imputer", {}).get("strategy", MISSING)}.
Sweep: study `{study.get("name", MISSING)}`, best trial {study.get("best_trial", MISSING)}, \
trials {study.get("trials", MISSING)}.

### Data
- raw data sha256 `{data.get("sha256", MISSING)}` ({data.get("rows", MISSING)} rows)
- train.parquet sha256 `{data.get("train_sha256", MISSING)}`, test.parquet sha256 `{data.get("test_sha256", MISSING)}`

### Lineage
{_table(steps, disable_numparse=True)}

Code: git `{code.get("sha", MISSING)}`{dirty}.
"""


def fit_description(card: str, pointer: str) -> str:
    """`card` as a version description of at most DESCRIPTION_LIMIT characters.

    Table cells lose their alignment padding first (Markdown renders them the same); a card still
    too long keeps its leading lines that fit, then `pointer` (where the full card is).
    """
    if len(card) <= DESCRIPTION_LIMIT:
        return card
    compact = "\n".join(re.sub(r" {2,}", " ", line) if line.startswith("|") else line for line in card.splitlines()) + (
        "\n" if card.endswith("\n") else ""
    )
    if len(compact) <= DESCRIPTION_LIMIT:
        return compact
    tail = f"\n\n{pointer}\n"
    head = compact[: DESCRIPTION_LIMIT - len(tail)]
    return head[: head.rfind("\n")].rstrip() + tail


def version_tags(
    best: Mapping[str, Any],
    test: Mapping[str, float],
    hardware_tags: Mapping[str, Any],
    verdict: Mapping[str, Any],
    data_sha256: str | None,
    code: Mapping[str, str],
    pipeline_run_id: str,
    trained_at: str,
    auto_promote: bool,
) -> dict[str, Any]:
    """Tags of a registered version: test metrics, provenance, hardware and the gate's verdict."""
    return {
        **{f"test.{k}": round(v, 6) for k, v in test.items()},
        "cv.wmape": best["cv"]["wmape"],
        "algorithm": best["family"],
        "estimator": best["estimator"],
        "data.sha256": data_sha256,
        "git.sha": code["sha"],
        "git.dirty": code["dirty"],
        "pipeline_run_id": pipeline_run_id,
        "trained_at": trained_at,
        **hardware_tags,
        "promotion.verdict": "promote" if verdict["promote"] else "hold",
        "promotion.reason": verdict["reason"],
        "promotion.auto": auto_promote,
        **_difference_tags(verdict.get("difference")),
    }


def _difference_tags(difference: Mapping[str, float] | None) -> dict[str, float]:
    """The gate's interval of (challenger - champion) test wMAPE; none without a champion."""
    if difference is None:
        return {}
    return {
        "promotion.delta_wmape": round(difference["estimate"], 6),
        "promotion.delta_low": round(difference["low"], 6),
        "promotion.delta_high": round(difference["high"], 6),
    }
