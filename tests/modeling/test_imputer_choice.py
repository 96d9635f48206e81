"""The imputer decision: the contest's winner, a forced strategy, nothing missing."""

import dataclasses

import numpy as np
import pandas as pd

from housing_mlops.config.schema import Config
from housing_mlops.modeling.imputer_choice import choose_imputer, imputation_record


def scores(rmse: dict[str, float]) -> pd.DataFrame:
    rows = [
        {"strategy": s, "column": "total_bedrooms", "rmse_mean": v, "rmse_std": 1.0, "seconds": 0.5}
        for s, v in rmse.items()
    ]
    return pd.DataFrame(rows)


def test_auto_uses_the_winner_and_a_forced_strategy_keeps_the_winner_on_record(cfg: Config) -> None:
    table = scores({"median": 360.0, "knn": 99.4, "iterative": 99.1234567})
    record = imputation_record(table, cfg.impute)
    assert (record["strategy"], record["winner"], record["forced"]) == ("iterative", "iterative", False)
    assert record["params"] == cfg.impute.strategies["iterative"]
    assert record["columns_with_missing"] == ["total_bedrooms"]
    assert record["scores"][2] == {
        "strategy": "iterative",
        "column": "total_bedrooms",
        "rmse_mean": 99.123457,
        "rmse_std": 1.0,
    }
    forced = imputation_record(table, dataclasses.replace(cfg.impute, strategy="median"))
    assert (forced["strategy"], forced["winner"], forced["forced"]) == ("median", "iterative", True)


def test_without_missing_values_there_is_no_contest_and_median_is_used(cfg: Config, full_data: pd.DataFrame) -> None:
    train = full_data.sample(200, random_state=5).fillna({"total_bedrooms": 400.0})
    choice = choose_imputer(train, cfg.data, cfg.impute)
    assert choice.scores.empty
    assert (choice.record["strategy"], choice.record["winner"]) == ("median", "median")
    assert choice.record["columns_with_missing"] == []


def test_the_contest_scores_only_columns_with_missing_values(cfg: Config, full_data: pd.DataFrame) -> None:
    train = full_data.sample(400, random_state=6)
    assert train["total_bedrooms"].isna().any()
    assert train.drop(columns="total_bedrooms").notna().all().all()
    strategies = {k: v for k, v in cfg.impute.strategies.items() if k in ("median", "mean")}
    impute = dataclasses.replace(cfg.impute, strategies=strategies, folds=1)
    choice = choose_imputer(train, cfg.data, impute)
    assert sorted(choice.scores["strategy"]) == ["mean", "median"]
    assert choice.record["columns_with_missing"] == ["total_bedrooms"]
    assert np.isfinite(choice.scores["rmse_mean"]).all()
    assert (choice.scores["rmse_mean"] > 0).all()
    assert choice.record["winner"] == choice.scores.loc[choice.scores["rmse_mean"].idxmin(), "strategy"]
