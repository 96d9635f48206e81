"""Step `register`: fit the tuned Pipeline on train and score it once on the sealed test set.

Then measure its hardware profile, register it and run the promotion gate.
"""

import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from housing_mlops.pipeline.registration import register_tuned
from housing_mlops.pipeline.runner import StepContext, run_step

log = logging.getLogger(__name__)


def register(ctx: StepContext) -> None:
    """Register the sweep's best model; the library owns the transaction and the gate."""
    best = yaml.safe_load(ctx.input("sweep", "best_params.yaml").read_text())
    train = pd.read_parquet(ctx.input("split", "train.parquet"))
    test = pd.read_parquet(ctx.input("split", "test.parquet"))  # the one read of the sealed set
    swept = ctx.optional_input("sweep", "oof_predictions.npy")
    done = register_tuned(ctx, best, train, test, None if swept is None else np.load(swept))
    verdict = done.verdict
    log.info(
        f"{done.name} v{done.version}: test wMAPE {done.scores['wmape']:.4f}, RMSE {done.scores['rmse']:,.0f}; "
        f"gate: {'promote' if verdict.promote else 'hold'} ({verdict.reason}); "
        f"{'champion' if done.promoted else 'challenger'}; hardware target {done.target}"
    )


if __name__ == "__main__":
    sys.exit(run_step("register", register, Path(__file__).resolve().parents[1]))
