"""What registration measures about the sweep's best Pipeline, before anything is logged.

The final fit, the compiled variant and its parity, the one scoring on the sealed test set, the
monitoring reference, both serving variants profiled and the hardware target chosen by cost. The
register step logs and registers the result; the benchmark floor times the same calls.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from housing_mlops.config.schema import Config
from housing_mlops.monitoring.reference import Reference, build_reference
from housing_mlops.registry import hardware, targets
from housing_mlops.registry.assessment import Assessment, assess, fit_final, reference_predictions
from housing_mlops.serving import variants
from housing_mlops.serving.runtime import CompiledModel


@dataclass(frozen=True)
class Candidate:
    """The fitted model and every figure its registration writes."""

    model: Pipeline
    compiled: variants.Compiled
    assessment: Assessment
    reference: Reference
    reference_source: str  # the sweep's out-of-fold predictions, or folds refitted
    hardware: dict[str, Any]  # targets.metadata: host, variant profiles, served variant, cost table, target
    target: targets.Recommendation
    seconds: dict[str, float]  # compile, reference, profile
    skops_types: list[str]  # what the model's skops file holds beyond skops' defaults: to trust on load


def measure(
    best: dict[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    cfg: Config,
    folder: Path,
    swept: np.ndarray | None = None,
) -> Candidate:
    """Fit `best` (the sweep's record) on train and measure it; the variants' files go in `folder`.

    `swept` is the sweep's out-of-fold predictions of that Pipeline (oof_predictions.npy), if any.
    """
    data, registry, deployment = cfg.data, cfg.registry, cfg.deployment
    X, X_test = train[data.features()], test[data.features()]
    seconds: dict[str, float] = {}
    model = fit_final(best, train, data)
    started = time.perf_counter()
    compiled = variants.compile_checked(model, X, X_test, cfg.serving)
    seconds["compile"] = time.perf_counter() - started
    # the compiled graph, checked against the model, computes the permutation importances
    checked = None if compiled.onnx is None else CompiledModel(compiled.onnx, 1, cfg.serving.chunk_rows).predict
    assessment = assess(model, test, data, registry.importance_rows, checked)
    started = time.perf_counter()
    predictions, source = reference_predictions(best, train, data, registry.reference, swept)
    reference = build_reference(train, predictions, assessment.scores, data, registry.reference.bins)
    seconds["reference"] = time.perf_counter() - started
    host = hardware.host_fingerprint()
    started = time.perf_counter()
    profiles, served, skops_types = variants.profile_variants(
        model,
        compiled,
        X_test,
        hardware.thread_counts(host["cores"]),
        folder,
        deployment.profile,
        cfg.serving.chunk_rows,
    )
    seconds["profile"] = time.perf_counter() - started
    costs = targets.cost_table(profiles[served], host, deployment)
    target = targets.recommend(costs, deployment.workload)
    meta = targets.metadata(host, profiles, served, costs, target, deployment.workload)
    return Candidate(model, compiled, assessment, reference, source, meta, target, seconds, skops_types)
