"""Choosing the imputer: the contest of impute.strategies on train, its winner, and imputation.json.

The contest runs on train with the target excluded.

A model-selection decision like select's, on imputers; the contest itself (masking, scoring)
is features.imputation's.
"""

from dataclasses import dataclass
from typing import Any

import pandas as pd

from housing_mlops.config.data import DataConfig
from housing_mlops.config.modeling import ImputeConfig
from housing_mlops.features.imputation import pick_winner, score_strategies

FALLBACK = "median"  # nothing is missing in train: no contest, the simplest strategy


@dataclass(frozen=True)
class ImputerChoice:
    """The contest's scores and imputation.json (strategy, params, winner, ...)."""

    scores: pd.DataFrame
    record: dict[str, Any]


def imputation_record(scores: pd.DataFrame, cfg: ImputeConfig) -> dict[str, Any]:
    """imputation.json: the strategy used and the scores without their timings.

    The strategy used is the winner, unless impute.strategy forces one. The timings vary run to run
    and stay out of the digested artifact.
    """
    winner = pick_winner(scores) if not scores.empty else FALLBACK
    chosen = winner if cfg.strategy == "auto" else cfg.strategy
    return {
        "strategy": chosen,
        "params": cfg.strategies[chosen],
        "winner": winner,
        "forced": cfg.strategy != "auto",
        "columns_with_missing": sorted(scores["column"].unique().tolist()),
        "scores": scores.drop(columns="seconds").round(6).to_dict(orient="records"),
    }


def choose_imputer(train: pd.DataFrame, data: DataConfig, cfg: ImputeConfig) -> ImputerChoice:
    """Score every strategy at reconstructing hidden known values, and decide.

    The hidden values are known values of train's numeric and geo columns (the target is never an
    input).
    """
    features = train[data.features("numeric", "geo")]
    scores = score_strategies(features, cfg.strategies, cfg.folds, cfg.mask_fraction, cfg.seed)
    return ImputerChoice(scores, imputation_record(scores, cfg))
