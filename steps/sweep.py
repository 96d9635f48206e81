"""Step `sweep`: Optuna study of the winning family on CV wMAPE -> best_params.yaml."""

import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from housing_mlops.features.spec import FeatureSpec
from housing_mlops.integrations import wandb_mirror as mirror
from housing_mlops.modeling.sweep_report import grid_score
from housing_mlops.pipeline.runner import StepContext, run_step
from housing_mlops.pipeline.sweep import default_storage, run_sweep
from housing_mlops.pipeline.sweep_tracking import log_study, trial_logger
from housing_mlops.pipeline.tracking import local_store_dir

log = logging.getLogger(__name__)


def sweep(ctx: StepContext) -> None:
    """Run the Optuna study, one nested run per trial, publish best_params.yaml, trials and plots."""
    data, cfg = ctx.cfg.data, ctx.cfg.sweep
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    spec = FeatureSpec.from_dict(json.loads(ctx.input("features", "feature_spec.json").read_text()))
    selection = json.loads(ctx.input("select", "selection.json").read_text())
    storage_url = cfg.storage or default_storage(local_store_dir(ctx.root))
    outcome = run_sweep(
        train[data.features()],
        train[data.target],
        spec,
        ctx.cfg.models.zoo[selection["family"]],
        selection,
        cfg,
        study_name=cfg.study_name or f"sweep-{ctx.key[:16]}",
        storage_url=storage_url,
        cache_dir=tempfile.mkdtemp(dir=ctx.workdir),
        callbacks=[trial_logger(ctx.experiment_id, ctx.run_id)],
    )
    study, record = outcome.study, outcome.record
    ctx.output("best_params.yaml", lambda p: p.write_text(yaml.safe_dump(record, sort_keys=False)))
    if outcome.predictions is not None:
        predictions = outcome.predictions
        ctx.output("oof_predictions.npy", lambda p: np.save(p, predictions))
    log_study(study, record, storage_url)
    grid = grid_score(study)
    log.info(
        f"best trial {study.best_trial.number}: CV wMAPE {study.best_value:.4f}; grid winner (trial 0) on the "
        f"same {cfg.folds} folds {'failed' if grid is None else f'{grid:.4f}'}, in select "
        f"({selection['folds']} folds) {selection['cv']['wmape']:.4f}; trials {record['study']['trials']}"
    )
    mirror.mirror_trials(ctx, study)  # W&B copy of every finished trial (no-op when wandb=disabled)


if __name__ == "__main__":
    sys.exit(run_step("sweep", sweep, Path(__file__).resolve().parents[1]))
