"""The `sweep` part: best CV wMAPE against trial count for TPE and random sampling."""

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import floor
from benchmarks.machine import figure
from benchmarks.pipelines import latest_pipeline
from benchmarks.settings import Settings
from housing_mlops.features.spec import FeatureSpec

SAMPLERS = ("tpe", "random")


def sweep_inputs(settings: Settings, floor_result: dict[str, Any] | None) -> tuple[FeatureSpec, dict[str, Any], str]:
    """The feature spec and grid winner the sweep starts from, and where they came from.

    The pipeline's own artifacts when a store exists, else the floor's, else computed by the floor's functions.
    """
    if settings.has_store:
        from mlflow.artifacts import load_text

        steps = {s["step"]: s["run_id"] for s in latest_pipeline(settings)["steps"]}
        spec = json.loads(load_text(f"{_artifact_uri(settings, steps['features'])}/feature_spec.json"))
        selection = json.loads(load_text(f"{_artifact_uri(settings, steps['select'])}/selection.json"))
        return FeatureSpec.from_dict(spec), selection, "pipeline store"
    if floor_result is not None:
        return FeatureSpec.from_dict(floor_result["spec"]), floor_result["selection"], "floor"
    cfg = settings.cfg()
    train, _ = floor.load_train(cfg, settings.data)
    spec = floor.choose_features(cfg, train, floor.impute(cfg, train))
    return spec, floor.select(cfg, train, spec), "computed"


def _artifact_uri(settings: Settings, run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    return str(MlflowClient(settings.tracking_uri).get_run(run_id).info.artifact_uri)


def sweep_efficiency(settings: Settings, floor_result: dict[str, Any] | None, plot: Path) -> dict[str, Any]:
    """Run the pipeline's study once per sampler from the same inputs, plot both curves to `plot`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = settings.cfg()
    train, _ = floor.load_train(cfg, settings.data)
    spec, selection, source = sweep_inputs(settings, floor_result)
    curves: dict[str, Any] = {}
    for sampler in SAMPLERS:
        curve: list[float | None] = []

        def record(study: optuna.Study, trial: optuna.trial.FrozenTrial, curve: list[float | None] = curve) -> None:
            complete = (t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE)
            done = [t.value for t in complete if t.value is not None]  # a complete trial has its value
            curve.append(min(done) if done else None)

        started = time.perf_counter()
        study = floor.run_study(cfg, train, spec, selection, sampler, settings.sweep_trials, None, [record]).study
        states = [t.state.name.lower() for t in study.trials]
        curves[sampler] = {
            "best_so_far": curve,
            "final_best": study.best_value,
            "best_at_trial": study.best_trial.number + 1,  # 1-based, as the curve's x axis
            "trials": len(study.trials),
            "pruned": states.count("pruned"),
            "seconds": round(time.perf_counter() - started, 1),
        }
        figure(settings, f"sweep {sampler}, best CV wMAPE after {len(curve)} trials", f"{study.best_value:.4f}")
    plot_curves(curves, plot)
    return {
        "family": selection["family"],
        "inputs_from": source,
        "folds": cfg.sweep.folds,
        "n_startup_trials": cfg.sweep.n_startup_trials,
        "samplers": curves,
    }


def plot_curves(curves: dict[str, Any], path: Path) -> None:
    """Both samplers' best-so-far curves as a step plot in a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for sampler, data in curves.items():
        values = [np.nan if v is None else v for v in data["best_so_far"]]
        ax.plot(
            range(1, len(values) + 1),
            values,
            marker=".",
            drawstyle="steps-post",
            label=f"{sampler} (best {data['final_best']:.4f})",
        )
    ax.set_xlabel("trials")
    ax.set_ylabel("best CV wMAPE so far")
    ax.set_title("Sweep efficiency: TPE vs random sampling (same seed, grid winner first)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
