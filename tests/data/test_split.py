"""Géron's stratified split, exactly."""

import pandas as pd
import pytest

from housing_mlops.data.schema import validate
from housing_mlops.data.split import split, strata
from housing_mlops.errors import SchemaError


def test_real_data_gives_geron_sizes_and_strata(full_data: pd.DataFrame, cfg) -> None:
    df = validate(full_data, cfg.data, "housing.csv").frame
    train, test = split(df, cfg.data, cfg.split)
    assert (len(train), len(test)) == (16512, 4128)
    assert set(train.index).isdisjoint(test.index)
    overall = strata(df, cfg.data).value_counts(normalize=True).sort_index()
    in_test = strata(test, cfg.data).value_counts(normalize=True).sort_index()
    assert (overall - in_test).abs().max() < 0.001  # stratified, as in Géron's table
    again, _ = split(df, cfg.data, cfg.split)
    pd.testing.assert_frame_equal(train, again)


def test_value_outside_strata_bins_is_an_error(full_data: pd.DataFrame, cfg) -> None:
    df = full_data.copy()
    df.loc[0, "median_income"] = -1.0
    with pytest.raises(SchemaError, match=r"median_income.*data\.stratify\.bins"):
        split(df, cfg.data, cfg.split)
