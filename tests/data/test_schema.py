"""Schema validation from config: each bad input gets one line naming the column."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from housing_mlops.data.schema import profile, read_csv, validate
from housing_mlops.errors import DataSourceError, SchemaError


@pytest.fixture
def df(sample_csv: Path) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


def check_fails(df: pd.DataFrame, cfg, match: str) -> str:
    with pytest.raises(SchemaError, match=match) as info:
        validate(df, cfg.data, "h.csv")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_valid_sample_passes_with_declared_dtypes(df: pd.DataFrame, cfg) -> None:
    checked = validate(df, cfg.data, "h.csv")
    out, warnings = checked.frame, checked.warnings
    assert warnings == []
    assert list(out.columns) == list(cfg.data.columns)
    assert out["total_bedrooms"].isna().any()  # nullable column keeps its gaps


def test_missing_column(df: pd.DataFrame, cfg) -> None:
    check_fails(df.drop(columns="median_income"), cfg, r"h\.csv: missing column\(s\) \['median_income'\]")


def test_extra_column_warns_and_is_dropped(df: pd.DataFrame, cfg) -> None:
    checked = validate(df.assign(surprise=1), cfg.data, "h.csv")
    out, warnings = checked.frame, checked.warnings
    assert "surprise" not in out.columns
    assert warnings == ["h.csv: ignoring column(s) ['surprise'] not declared in config data.columns"]


def test_text_in_numeric_column(df: pd.DataFrame, cfg) -> None:
    df["median_income"] = df["median_income"].astype(object)
    df.loc[df.index[3], "median_income"] = "n/a-ish"
    check_fails(df, cfg, r"column 'median_income': 1 value\(s\) not of type float \(e\.g\. 'n/a-ish'")


def test_out_of_range_beyond_share(df: pd.DataFrame, cfg) -> None:
    df.loc[df.index[:5], "total_rooms"] = 99999.0  # in its domain [1, inf), not in the plausible range
    message = check_fails(df, cfg, r"column 'total_rooms': 5 of 2000 values \(0\.25%\) outside \[1, 50000\]")
    assert "data.max_out_of_range_share" in message


def test_out_of_range_within_share_passes(df: pd.DataFrame, cfg) -> None:
    df.loc[df.index[:1], "total_rooms"] = 99999.0  # 0.05% <= 0.1%
    validate(df, cfg.data, "h.csv")


def test_unknown_category(df: pd.DataFrame, cfg) -> None:
    df.loc[df.index[7], "ocean_proximity"] = "ON MARS"
    check_fails(df, cfg, r"column 'ocean_proximity': 1 value\(s\) not in data\.columns\.ocean_proximity")


def test_missing_target_values(df: pd.DataFrame, cfg) -> None:
    df.loc[df.index[:2], "median_house_value"] = np.nan
    check_fails(df, cfg, r"column 'median_house_value': 2 missing value\(s\)")


def test_fewer_rows_than_minimum(df: pd.DataFrame, cfg) -> None:
    check_fails(df.head(10), cfg, r"h\.csv: 10 rows, fewer than data\.min_rows=1000")


def test_every_failing_column_is_reported_at_once(df: pd.DataFrame, cfg) -> None:
    df.loc[df.index[7], "ocean_proximity"] = "ON MARS"
    df.loc[df.index[:2], "median_house_value"] = np.nan
    message = check_fails(df, cfg, "ocean_proximity")
    assert "median_house_value" in message


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataSourceError, match=r"empty\.csv is empty"):
        read_csv(empty)


def test_binary_file_is_not_a_csv(tmp_path: Path) -> None:
    binary = tmp_path / "data.csv"
    binary.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DataSourceError, match=r"data\.csv is not a readable CSV"):
        read_csv(binary)


def test_profile_counts_missing_and_categories(df: pd.DataFrame, cfg) -> None:
    out = validate(df, cfg.data, "h.csv").frame
    stats = profile(out)
    assert stats["total_bedrooms"]["missing"] == int(df["total_bedrooms"].isna().sum())
    assert sum(stats["ocean_proximity"]["counts"].values()) == len(df)
    assert stats["median_income"]["min"] == df["median_income"].min()
