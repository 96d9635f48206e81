"""The register step's library.

The final fit and its one test scoring, the MLflow model with its hardware profile, and
registration as a transaction that never leaves a half-registered version behind.
"""

import dataclasses
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import skops.io
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline

import housing_mlops
from housing_mlops.config.registry import RegistryConfig
from housing_mlops.pipeline import serving_model
from housing_mlops.pipeline.context import StepContext
from housing_mlops.pipeline.provenance import code_version
from housing_mlops.pipeline.tracking import digests
from housing_mlops.registry import store as registry
from housing_mlops.registry import targets
from housing_mlops.registry.assessment import Assessment, segment_metric
from housing_mlops.registry.candidate import measure
from housing_mlops.registry.card import fit_description, model_card, version_tags
from housing_mlops.registry.digest import MODEL_DIGEST_TAG, model_digest
from housing_mlops.registry.gate import Contender, Verdict
from housing_mlops.reporting import plots
from housing_mlops.serving import variants
from housing_mlops.tags import (
    DATA_SHA_TAG,
    HARDWARE_TARGET_TAG,
    MODEL_VERSION_TAG,
    PROMOTED_TAG,
    REFERENCE_SOURCE_TAG,
)

log = logging.getLogger(__name__)

# pinned explicitly: MLflow's own inference of them takes ~4 s per log_model
REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow", "onnxruntime")
MODEL_DESCRIPTION = "California housing price regressor (housing-mlops)."


@dataclass(frozen=True)
class VersionRecord:
    """What a new version gets written on it once the gate has spoken."""

    description: str
    tags: dict[str, Any]


@dataclass(frozen=True)
class Registered:
    """The outcome of one registration: the version, the gate's verdict and the test scores."""

    name: str
    version: str
    verdict: Verdict
    promoted: bool
    scores: dict[str, float]
    target: str


def save_args(model: Pipeline, X: pd.DataFrame, skops_types: list[str] | None = None) -> dict[str, Any]:
    """Arguments of `mlflow.sklearn.save_model`/`log_model`.

    Signature, example, pinned pip requirements, the package as code, and skops with the
    Pipeline's own types trusted: `skops_types` when a skops file of `model` gave them already
    (serializing the full Pipeline again to find them took 0.85 s).
    """
    if skops_types is None:
        skops_types = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    return {
        "signature": infer_signature(X, model.predict(X.head(50))),
        "input_example": X.head(5),
        "pip_requirements": [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS],
        "code_paths": [str(Path(housing_mlops.__file__).parent)],
        "serialization_format": "skops",
        "skops_trusted_types": skops_types,
    }


def register_tuned(
    ctx: StepContext,
    best: dict[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    swept: np.ndarray | None = None,
) -> Registered:
    """Fit the sweep's best Pipeline, score it once on the sealed test set, and register it.

    The model is logged with its hardware profile and registered through the promotion gate.
    `swept` is the sweep's out-of-fold predictions of that Pipeline (oof_predictions.npy), if any.
    """
    data, cfg = ctx.cfg.data, ctx.cfg.registry
    X, X_test, y_test = train[data.features()], test[data.features()], test[data.target]
    candidate = measure(best, train, test, ctx.cfg, ctx.workdir, swept)
    model, compiled, hardware_meta = candidate.model, candidate.compiled, candidate.hardware
    served = hardware_meta["served"]
    if compiled.onnx is None:
        ctx.warn(f"serving the sklearn Pipeline, not the compiled graph: {compiled.reason}")
    _log_assessment(candidate.assessment, y_test)
    mlflow.set_tag(REFERENCE_SOURCE_TAG, candidate.reference_source)
    mlflow.log_metrics({f"register_{name}_s": s for name, s in candidate.seconds.items()})
    args = save_args(model, X, candidate.skops_types)
    serving = _serving_record(ctx, compiled, served, hardware_meta["variants"])
    info = serving_model.log_model(
        model,
        compiled.onnx if served == variants.ONNX else None,
        {"variant": served, "threads": ctx.cfg.serving.threads, "chunk_rows": ctx.cfg.serving.chunk_rows},
        candidate.reference,
        {"hardware": hardware_meta, "serving": serving},
        **args,
    )
    log.info(f"serving the {served} variant: {serving['why']}")
    scores = candidate.assessment.scores
    mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()} | targets.metrics(hardware_meta))

    hardware_tags = targets.tags(hardware_meta)

    serving_tags = {f"serving.{k}": v for k, v in serving.items()}
    # what a re-run on a busy machine must reproduce: the same inputs give this exact digest
    serving_tags[MODEL_DIGEST_TAG] = model_digest(model, compiled.onnx if served == variants.ONNX else None)

    def record(version: str, verdict: Verdict) -> VersionRecord:
        ctx.output("promotion.json", lambda p: p.write_text(json.dumps(verdict.to_dict(), indent=2)))
        card = {"hardware": hardware_meta, "serving": serving}
        return _describe(ctx, best, train, test, scores, card, hardware_tags | serving_tags, verdict)

    challenger = Contender(
        "",
        scores["wmape"],
        hardware_meta["cpu_p95_ms"],
        args["signature"].inputs.to_dict(),
        candidate.assessment.predicted.to_numpy(),
    )
    version, verdict = register_version(ctx.client, cfg, info.model_uri, challenger, X_test, y_test, record, ctx.warn)
    promoted = verdict.promote and cfg.auto_promote
    mlflow.set_tags(
        {MODEL_VERSION_TAG: version, PROMOTED_TAG: str(promoted).lower(), HARDWARE_TARGET_TAG: candidate.target.target}
    )
    return Registered(cfg.model_name, version, verdict, promoted, scores, candidate.target.target)


def _serving_record(
    ctx: StepContext, compiled: variants.Compiled, served: str, profiles: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """What is served and why, as version tags and MLmodel metadata (`serving.*`)."""
    p95 = {variant: profile["cpu_p95_ms"] for variant, profile in profiles.items()}
    if served == variants.ONNX:
        why = (
            f"compiled graph agrees with sklearn ({compiled.reason}) and is faster: 1-thread CPU p95 "
            f"{p95[variants.ONNX]:.3f} ms vs {p95[variants.SKLEARN]:.3f} ms"
        )
    elif compiled.onnx is None:
        why = f"no compiled variant: {compiled.reason}"
    else:
        why = f"sklearn is faster than the compiled graph: {p95[variants.SKLEARN]:.3f} vs {p95[variants.ONNX]:.3f} ms"
    record: dict[str, Any] = {"variant": served, "why": why, "compiled": compiled.onnx is not None}
    if compiled.parity is not None:
        record |= {
            "parity_passed": compiled.parity.passed,
            "parity_max_rel_error": compiled.parity.max_rel_error,
            "parity_rows": compiled.parity.rows,
            "parity_tolerance": ctx.cfg.serving.max_rel_error,
        }
    return record


def register_version(
    client: MlflowClient,
    cfg: RegistryConfig,
    model_uri: str,
    challenger: Contender,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    record: Callable[[str, Verdict], VersionRecord],
    warn: Callable[[str], None] = log.warning,
) -> tuple[str, Verdict]:
    """Register `model_uri` as a new version, gated against the champion; return (version, verdict).

    Write `record`'s description and tags, set `challenger` (and `champion` on a promote verdict
    when `cfg.auto_promote`), and tag it complete last. Any failure on the way deletes the version
    and gives `champion` back.
    """
    name = cfg.model_name
    registry.ensure_model(client, name, MODEL_DESCRIPTION)
    deleted, left = registry.prune_incomplete(client, name)
    if deleted:
        log.info(
            f"deleted half-registered version(s) {', '.join(deleted)} of {name}: "
            "their register run was interrupted before completing"
        )
    if left:
        warn(
            f"{name} version(s) {', '.join(left)} lack tag {registry.COMPLETE_TAG} and their "
            "register run is still RUNNING (registering elsewhere, or interrupted): left alone"
        )
    version = str(mlflow.register_model(model_uri, name).version)
    try:
        verdict = registry.gate(client, name, dataclasses.replace(challenger, version=version), X_test, y_test, cfg)
        written = record(version, verdict)
        client.update_model_version(name, version, written.description)
        registry.tag_version(client, name, version, written.tags)
        client.set_registered_model_alias(name, registry.CHALLENGER, version)
        if verdict.promote and cfg.auto_promote:
            registry.set_champion(client, name, version, verdict.reason)
        # last: a version without this tag is half-registered, and the next register run
        # deletes it once its run is known dead (registry.prune_incomplete)
        registry.tag_version(client, name, version, {registry.COMPLETE_TAG: "complete"})
    except BaseException:
        try:
            registry.discard(client, name, version)
        except MlflowException as exc:  # the store itself failed: keep the original error
            log.warning(f"could not delete half-registered v{version} of {name} ({exc}); the next register run will")
        raise
    return version, verdict


def _describe(
    ctx: StepContext,
    best: dict[str, Any],
    train: pd.DataFrame,
    test: pd.DataFrame,
    scores: dict[str, float],
    meta: dict[str, Any],
    runtime_tags: dict[str, Any],
    verdict: Verdict,
) -> VersionRecord:
    """The model card and tags of the version, with its lineage, data digests and code."""
    lineage = {
        "pipeline": ctx.client.get_run(ctx.run_id).data.tags.get("mlflow.parentRunId", "none"),
        **{step: run.info.run_id for step, run in ctx.upstream.items()},
        "register": ctx.run_id,
    }
    split_digests = digests(ctx.upstream["split"])
    raw_sha = ctx.upstream["ingest"].data.tags.get(DATA_SHA_TAG)
    data_sha256 = None if raw_sha is None else str(raw_sha)
    card_data: dict[str, Any] = {
        "sha256": data_sha256,
        "rows": len(train) + len(test),
        "train_rows": len(train),
        "test_rows": len(test),
        "train_sha256": split_digests["train.parquet"],
        "test_sha256": split_digests["test.parquet"],
    }
    code = code_version(ctx.root)
    trained_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    gate = verdict.to_dict()
    auto = ctx.cfg.registry.auto_promote
    card = model_card(best, scores, lineage, card_data, code, meta["hardware"], meta["serving"], gate, trained_at)
    mlflow.log_text(card, "model_card.md")
    return VersionRecord(
        fit_description(card, f"(cut to fit; the full card: `model_card.md` of register run {ctx.run_id})"),
        version_tags(best, scores, runtime_tags, gate, data_sha256, code, lineage["pipeline"], trained_at, auto),
    )


def _log_assessment(result: Assessment, y_test: pd.Series) -> None:
    mlflow.log_dict(result.scores, "test_metrics.json")
    mlflow.log_table(result.by_segment, "segment_wmape.json")
    segments = result.by_segment
    for segment, value, score in zip(segments["segment"], segments["value"], segments["wmape"], strict=True):
        mlflow.log_metric(segment_metric(segment, value), score)
    mlflow.log_figure(plots.predictions(y_test, result.predicted), "predictions.png")
    values = result.importances
    mlflow.log_table(values.rename("importance").rename_axis("feature").reset_index(), "importances.json")
    mlflow.log_figure(plots.importances(values, result.importance_title), "importances.png")
