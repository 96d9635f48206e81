"""Step `register`: fit the tuned Pipeline on train, score it once on the sealed test set,
measure its hardware profile, register it and run the promotion gate."""

import json
import logging
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import mlflow
import pandas as pd
import skops.io
import yaml
from mlflow.models import infer_signature
from sklearn.inspection import permutation_importance

import housing_mlops
from housing_mlops.data.split import strata
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.modeling.evaluation import segment_wmape
from housing_mlops.modeling.metrics import evaluate
from housing_mlops.modeling.zoo import estimator_from, make_pipeline
from housing_mlops.pipeline.provenance import code_version
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.pipeline.tracking import digests
from housing_mlops.registry import hardware
from housing_mlops.registry import store as registry
from housing_mlops.registry.card import model_card
from housing_mlops.registry.gate import Contender, decide
from housing_mlops.reporting import plots
from housing_mlops.tags import DATA_SHA_TAG, HARDWARE_TARGET_TAG, MODEL_VERSION_TAG, PROMOTED_TAG

log = logging.getLogger(__name__)

REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "skops", "pyarrow")


def register(ctx: StepContext) -> None:
    data, cfg = ctx.cfg.data, ctx.cfg.registry
    best = yaml.safe_load(ctx.input("sweep", "best_params.yaml").read_text())
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    test = pd.read_parquet(ctx.input("split", "test.parquet"))  # the one read of the sealed set
    X, y = train[data.features()], train[data.target]
    X_test, y_test = test[data.features()], test[data.target]

    model = make_pipeline(
        FeatureSpec.from_dict(best["feature_spec"]),
        estimator_from(best["estimator"], best["params"]),
    )
    model.fit(X, y)
    predicted = model.predict(X_test)
    scores = evaluate(y_test, predicted)
    segments = test[data.features("categorical")].assign(income_category=strata(test, data).astype(str))
    by_segment = segment_wmape(segments, y_test, predicted)
    _log_evaluation(ctx, model, X_test, y_test, predicted, scores, by_segment)

    signature = infer_signature(X, model.predict(X.head(50)))
    save_args = {
        "signature": signature,
        "input_example": X.head(5),
        "pip_requirements": [f"{name}=={metadata.version(name)}" for name in REQUIREMENTS],
        "code_paths": [str(Path(housing_mlops.__file__).parent)],
        "serialization_format": "skops",
        "skops_trusted_types": skops.io.get_untrusted_types(data=skops.io.dumps(model)),
    }
    local = ctx.workdir / "model"
    mlflow.sklearn.save_model(model, str(local), **save_args)
    host = hardware.host_fingerprint()
    profile = hardware.measure(local, mlflow.pyfunc.load_model, X_test, cfg.latency_calls)
    target = hardware.recommend(profile, host, best["family"], ctx.cfg.deployment)
    hardware_meta = {
        **profile,
        "host": host,
        "target": target.target,
        "rationale": target.rationale,
        "fits_edge": target.fits_edge,
    }
    info = mlflow.sklearn.log_model(model, name="model", metadata={"hardware": hardware_meta}, **save_args)
    mlflow.log_metrics({f"test_{k}": v for k, v in scores.items()} | {f"hw_{k}": v for k, v in profile.items()})

    registry.ensure_model(ctx.client, cfg.model_name, "California housing price regressor (housing-mlops).")
    deleted, left = registry.prune_incomplete(ctx.client, cfg.model_name)
    if deleted:
        log.info(
            f"deleted half-registered version(s) {', '.join(deleted)} of {cfg.model_name}: "
            "their register run was interrupted before completing"
        )
    if left:
        ctx.warn(
            f"{cfg.model_name} version(s) {', '.join(left)} lack tag {registry.COMPLETE_TAG} and their "
            "register run is still RUNNING (registering elsewhere, or interrupted): left alone"
        )
    version = str(mlflow.register_model(info.model_uri, cfg.model_name).version)
    try:
        verdict = _gate(ctx, version, X_test, y_test, scores, profile, signature)
        ctx.output("promotion.json", lambda p: p.write_text(json.dumps(verdict.to_dict(), indent=2)))
        lineage = {
            "pipeline": ctx.client.get_run(ctx.run_id).data.tags.get("mlflow.parentRunId", "none"),
            **{step: run.info.run_id for step, run in ctx.upstream.items()},
            "register": ctx.run_id,
        }
        raw = ctx.upstream["ingest"].data.tags
        split_digests = digests(ctx.upstream["split"])
        card_data = {
            "sha256": raw.get(DATA_SHA_TAG),
            "rows": len(train) + len(test),
            "train_rows": len(train),
            "test_rows": len(test),
            "train_sha256": split_digests["train.parquet"],
            "test_sha256": split_digests["test.parquet"],
        }
        code = code_version(ctx.root)
        trained_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        ctx.client.update_model_version(
            cfg.model_name,
            version,
            model_card(best, scores, lineage, card_data, code, hardware_meta, verdict.to_dict(), trained_at),
        )
        registry.tag_version(
            ctx.client,
            cfg.model_name,
            version,
            {
                **{f"test.{k}": round(v, 6) for k, v in scores.items()},
                "cv.wmape": best["cv"]["wmape"],
                "algorithm": best["family"],
                "estimator": best["estimator"],
                "data.sha256": card_data["sha256"],
                "git.sha": code["sha"],
                "git.dirty": code["dirty"],
                "pipeline_run_id": lineage["pipeline"],
                "trained_at": trained_at,
                **{f"hardware.{k}": v for k, v in profile.items()},
                "hardware.target": target.target,
                "hardware.fits_edge": target.fits_edge,
                "hardware.cpu_model": host["cpu_model"],
                "hardware.cores": host["cores"],
                "hardware.isa": ",".join(host["isa"]),
                "hardware.gpu": host["gpu"],
                "hardware.memory_gb": host["memory_gb"],
                "promotion.verdict": "promote" if verdict.promote else "hold",
                "promotion.reason": verdict.reason,
                "promotion.auto": cfg.auto_promote,
            },
        )
        ctx.client.set_registered_model_alias(cfg.model_name, registry.CHALLENGER, version)
        if verdict.promote and cfg.auto_promote:
            registry.set_champion(ctx.client, cfg.model_name, version, verdict.reason)
        # last: a version without this tag is half-registered, and the next register run
        # deletes it once its run is known dead (registry.prune_incomplete)
        registry.tag_version(ctx.client, cfg.model_name, version, {registry.COMPLETE_TAG: "complete"})
    except BaseException:
        # never leave a half-registered version behind (champion goes back if it had moved)
        registry.discard(ctx.client, cfg.model_name, version)
        raise
    promoted = verdict.promote and cfg.auto_promote
    mlflow.set_tags(
        {
            MODEL_VERSION_TAG: version,
            PROMOTED_TAG: str(promoted).lower(),
            HARDWARE_TARGET_TAG: target.target,
        }
    )
    log.info(
        f"{cfg.model_name} v{version}: test wMAPE {scores['wmape']:.4f}, RMSE {scores['rmse']:,.0f}; "
        f"gate: {'promote' if verdict.promote else 'hold'} ({verdict.reason}); "
        f"{'champion' if promoted else 'challenger'}; hardware target {target.target}"
    )


def _gate(ctx, version, X_test, y_test, scores, profile, signature):
    """Re-score the current champion on the same test set and decide."""
    cfg = ctx.cfg.registry
    challenger = Contender(str(version), scores["wmape"], profile["latency_p95_ms"], signature.inputs.to_dict())
    current = registry.version_by_alias(ctx.client, cfg.model_name, registry.CHAMPION)
    champion = None
    if current is not None and str(current.version) != str(version):
        champion = registry.contender(ctx.client, cfg.model_name, current.version, X_test, y_test)
    return decide(challenger, champion, cfg)


def _log_evaluation(ctx, model, X_test, y_test, predicted, scores, by_segment) -> None:
    cfg = ctx.cfg.registry
    mlflow.log_dict(scores, "test_metrics.json")
    mlflow.log_table(by_segment, "segment_wmape.json")
    for row in by_segment.itertuples():
        mlflow.log_metric(f"test_wmape.{row.segment}.{row.value}".replace(" ", "_").replace("<", "lt"), row.wmape)
    mlflow.log_figure(plots.predictions(y_test, pd.Series(predicted, index=y_test.index)), "predictions.png")
    estimator = model[-1]
    if hasattr(estimator, "feature_importances_"):
        names = model[:-1].get_feature_names_out()
        values = pd.Series(estimator.feature_importances_, index=names)
        title = "Impurity importance of engineered features"
    else:
        sample = X_test.sample(min(cfg.importance_rows, len(X_test)), random_state=0)
        result = permutation_importance(
            model,
            sample,
            y_test.loc[sample.index],
            n_repeats=3,
            random_state=0,
            scoring="neg_mean_absolute_error",
        )
        values = pd.Series(result.importances_mean, index=sample.columns)
        title = "Permutation importance of raw inputs (MAE increase, test sample)"
    mlflow.log_table(values.rename("importance").rename_axis("feature").reset_index(), "importances.json")
    mlflow.log_figure(plots.importances(values, title), "importances.png")


if __name__ == "__main__":
    sys.exit(run_step("register", register, Path(__file__).resolve().parents[1]))
