"""The data's domain (data.columns.<name>.domain): one test per rule, the drop mode, the real data."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from housing_mlops.config.data import DataConfig, DomainConfig
from housing_mlops.data.schema import validate
from housing_mlops.errors import SchemaError

ROW = 17

# (column, a value just outside its domain, one just inside, the domain as the error line writes it)
RULES = [
    ("longitude", -124.42, -124.41, "[-124.41, -114.13]"),
    ("longitude", -114.12, -114.13, "[-124.41, -114.13]"),
    ("latitude", 32.52, 32.53, "[32.53, 42.01]"),
    ("latitude", 42.02, 42.01, "[32.53, 42.01]"),
    ("housing_median_age", -1.0, 0.0, "[0, 52]"),
    ("housing_median_age", 53.0, 52.0, "[0, 52]"),
    ("total_rooms", np.nextafter(1.0, 0.0), 1.0, "[1, inf)"),
    ("total_bedrooms", -1.0, 0.0, "[0, inf)"),
    ("population", 0.0, 1.0, "[1, inf)"),
    ("households", 0.0, 1.0, "[1, inf)"),
    ("median_income", 0.0, 0.0001, "(0, inf)"),
    ("median_income", -0.5, 0.4999, "(0, inf)"),
    ("median_house_value", 0.0, 1.0, "(0, inf)"),
    ("median_house_value", -14999.0, 14999.0, "(0, inf)"),
]


@pytest.fixture
def df(sample_csv) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


def fails(df: pd.DataFrame, data: DataConfig, match: str) -> str:
    with pytest.raises(SchemaError, match=match) as info:
        validate(df, data, "h.csv")
    assert "\n" not in str(info.value)
    return str(info.value)


def with_drop(data: DataConfig, **changes: object) -> DataConfig:
    return dataclasses.replace(data, on_invalid="drop", **changes)


@pytest.mark.parametrize(("column", "outside", "inside", "domain"), RULES, ids=lambda v: str(v))
def test_a_value_just_outside_the_domain_fails_naming_column_row_and_value(
    df: pd.DataFrame, cfg, column: str, outside: float, inside: float, domain: str
) -> None:
    df.loc[ROW, column] = outside
    value = str(int(outside)) if float(outside).is_integer() else repr(float(outside))
    line = (
        f"h.csv: column '{column}' row {ROW} value {value} is outside its domain {domain} "
        f"(data.columns.{column}.domain); 1 row(s) violate it"
    )
    assert fails(df, cfg.data, re.escape(line)) == line


@pytest.mark.parametrize(("column", "outside", "inside", "domain"), RULES, ids=lambda v: str(v))
def test_a_value_just_inside_the_domain_passes(
    df: pd.DataFrame, cfg, column: str, outside: float, inside: float, domain: str
) -> None:
    df.loc[ROW, column] = inside
    checked = validate(df, cfg.data, "h.csv")
    assert checked.frame.loc[ROW, column] == inside
    assert (checked.rows_dropped, checked.dropped) == (0, [])


def test_every_declared_category_is_in_the_any_domain(df: pd.DataFrame, cfg) -> None:
    assert cfg.data.columns["ocean_proximity"].domain == DomainConfig(categories="any")
    categories = cfg.data.columns["ocean_proximity"].categories
    df.loc[: len(categories) - 1, "ocean_proximity"] = categories
    validate(df, cfg.data, "h.csv")


def test_a_category_outside_a_listed_domain_fails(df: pd.DataFrame, cfg) -> None:
    column = dataclasses.replace(
        cfg.data.columns["ocean_proximity"], domain=DomainConfig(categories=["<1H OCEAN", "INLAND"])
    )
    data = dataclasses.replace(cfg.data, columns={**cfg.data.columns, "ocean_proximity": column})
    df.loc[:, "ocean_proximity"] = "INLAND"
    df.loc[[ROW, 40], "ocean_proximity"] = "NEAR BAY"
    fails(
        df,
        data,
        r"^h\.csv: column 'ocean_proximity' row 17 value 'NEAR BAY' is outside its domain "
        r"\{'<1H OCEAN', 'INLAND'\} \(data\.columns\.ocean_proximity\.domain\); 2 row\(s\) violate it$",
    )


def test_the_first_violation_and_the_count_of_rows_are_named(df: pd.DataFrame, cfg) -> None:
    df.loc[[40, ROW, 300, 1999], "households"] = -3.0
    fails(df, cfg.data, r"column 'households' row 17 value -3 is outside its domain \[1, inf\) .*; 4 row\(s\)")


def test_every_violated_column_is_named_in_one_line(df: pd.DataFrame, cfg) -> None:
    df.loc[ROW, "households"] = 0.0
    df.loc[5, "latitude"] = 99.0
    message = fails(df, cfg.data, r"column 'latitude' row 5 value 99 is outside its domain")
    assert "column 'households' row 17 value 0" in message


def test_missing_values_are_not_domain_violations(df: pd.DataFrame, cfg) -> None:
    assert df["total_bedrooms"].isna().any()  # nullable, domain [0, inf)
    validate(df, cfg.data, "h.csv")


def test_drop_mode_drops_and_counts_the_rows_per_column(df: pd.DataFrame, cfg) -> None:
    df.loc[[ROW, 30], "households"] = -3.0
    df.loc[[30, 40], "median_income"] = 0.0  # row 30 breaks two rules: dropped once
    checked = validate(df, with_drop(cfg.data), "h.csv")
    assert checked.rows_dropped == 3
    assert [(v.column, v.rows, v.row) for v in checked.dropped] == [("households", 2, ROW), ("median_income", 2, 30)]
    assert checked.dropped[0].describe() == (
        "column 'households' row 17 value -3 is outside its domain [1, inf) (data.columns.households.domain)"
    )
    assert len(checked.frame) == len(df) - 3
    assert not {ROW, 30, 40} & set(checked.frame.index)


def test_drop_mode_keeps_a_clean_table_whole(df: pd.DataFrame, cfg) -> None:
    checked = validate(df, with_drop(cfg.data), "h.csv")
    assert (len(checked.frame), checked.rows_dropped, checked.dropped) == (len(df), 0, [])


def test_drop_mode_still_fails_on_what_dropping_cannot_mend(df: pd.DataFrame, cfg) -> None:
    df.loc[ROW, "households"] = -3.0
    df.loc[[1, 2], "median_house_value"] = np.nan
    fails(df, with_drop(cfg.data), r"^h\.csv: column 'median_house_value': 2 missing value\(s\)")


def test_drop_mode_below_min_rows_fails(df: pd.DataFrame, cfg) -> None:
    df.loc[[ROW, 30], "households"] = -3.0
    fails(
        df,
        with_drop(cfg.data, min_rows=len(df) - 1),
        r"^h\.csv: 1998 rows after dropping 2 outside their domain \(data\.on_invalid=drop\), "
        r"fewer than data\.min_rows=1999$",
    )


def test_the_real_data_is_inside_its_domain(full_data: pd.DataFrame, cfg) -> None:
    # 0 of the 20,640 rows break a rule: the domain rejects no real census block group
    checked = validate(full_data, with_drop(cfg.data), "housing.csv")
    assert (checked.rows_dropped, len(checked.frame)) == (0, 20640)
    validate(full_data, cfg.data, "housing.csv")
