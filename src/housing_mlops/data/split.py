"""Géron's stratified train/test split."""

import pandas as pd
from sklearn.model_selection import train_test_split

from housing_mlops.config.data import DataConfig, SplitConfig
from housing_mlops.errors import SchemaError


def strata(df: pd.DataFrame, data: DataConfig) -> pd.Series:
    """Stratum label per row: pd.cut of the stratify column into the configured bins."""
    column, bins = data.stratify.column, data.stratify.bins
    labels = pd.cut(df[column], bins=bins, labels=range(1, len(bins)))
    outside = labels.isna() & df[column].notna()
    if outside.any():
        raise SchemaError(f"column '{column}': {int(outside.sum())} value(s) outside data.stratify.bins {bins}")
    return labels


def split(df: pd.DataFrame, data: DataConfig, cfg: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (train, test), stratified by `strata`; row index is kept as the lineage key."""
    labels = strata(df, data)
    counts = labels.value_counts()
    if (counts.loc[counts > 0] < 2).any():
        raise SchemaError(
            f"column '{data.stratify.column}': a stratum of data.stratify.bins has fewer than 2 rows "
            f"({counts.to_dict()}); widen the bins"
        )
    try:
        train, test = train_test_split(df, test_size=cfg.test_size, stratify=labels, random_state=cfg.seed)
    except ValueError as exc:  # test_size too small for the number of strata, and the like
        raise SchemaError(f"split.test_size={cfg.test_size}: {exc}") from exc
    return train, test
