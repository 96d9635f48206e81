"""Validate the raw table against the schema declared in config/data/ (pandera)."""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from housing_mlops.config.data import ColumnConfig, DataConfig
from housing_mlops.data import domain
from housing_mlops.data.domain import Violation
from housing_mlops.errors import DataSourceError, SchemaError

_DTYPES = {"float": "float64", "int": "int64", "str": "str"}


@dataclass(frozen=True)
class Validated:
    """The validated table, warnings for the step's output, and what data.on_invalid=drop removed."""

    frame: pd.DataFrame
    warnings: list[str]
    dropped: list[Violation]  # per column, in config order; empty unless data.on_invalid=drop
    rows_dropped: int  # distinct rows removed (a row may break several columns' domains)


def read_csv(path: Path) -> pd.DataFrame:
    """Read the raw CSV; an empty or unreadable file is a DataSourceError naming the file."""
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataSourceError(f"{path.name} is empty: no header and no rows") from exc
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = str(exc).splitlines()[0]
        raise DataSourceError(f"{path.name} is not a readable CSV: {reason}") from exc


def build_schema(data: DataConfig) -> pa.DataFrameSchema:
    """The pandera schema of data.columns: coerced dtypes, nullability, range, category and domain checks.

    Not strict: columns the config does not declare are left to the caller.
    """
    columns = {
        name: pa.Column(
            _DTYPES[col.dtype],
            checks=_checks(name, col, data.max_out_of_range_share),
            nullable=col.nullable,
            coerce=True,
        )
        for name, col in data.columns.items()
    }
    return pa.DataFrameSchema(columns, strict=False)


def validate(df: pd.DataFrame, data: DataConfig, name: str) -> Validated:
    """Return the table restricted to the declared columns, coerced, with warnings.

    Every failing column is reported at once, in one line. Rows outside their column's domain
    fail too, unless data.on_invalid is `drop`: then they are removed and counted.
    """
    warnings: list[str] = []
    missing = [c for c in data.columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{name}: missing column(s) {missing} declared in config data.columns")
    extra = [c for c in df.columns if c not in data.columns]
    if extra:
        warnings.append(f"{name}: ignoring column(s) {extra} not declared in config data.columns")
    if len(df) < data.min_rows:
        raise SchemaError(f"{name}: {len(df)} rows, fewer than data.min_rows={data.min_rows}")
    schema = build_schema(data)
    table = df[list(data.columns)]
    try:
        return Validated(schema.validate(table, lazy=True), warnings, [], 0)
    except SchemaErrors as exc:
        failed = exc
    cases = failed.failure_cases
    if data.on_invalid != "drop" or not domain.rows(cases):
        raise SchemaError(f"{name}: {_summarise(cases, df, data)}") from failed
    dropped, rows = domain.violations(cases, data), domain.rows(cases)
    kept = table.drop(index=rows)
    if len(kept) < data.min_rows:
        raise SchemaError(
            f"{name}: {len(kept)} rows after dropping {len(rows)} outside their domain "
            f"(data.on_invalid=drop), fewer than data.min_rows={data.min_rows}"
        )
    try:
        return Validated(schema.validate(kept, lazy=True), warnings, dropped, len(rows))
    except SchemaErrors as exc:  # what dropping cannot mend: types, missing values, categories
        raise SchemaError(f"{name}: {_summarise(exc.failure_cases, df, data)}") from exc


def profile(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Per-column stats for profile.json: dtype, missing, and range or category counts."""
    stats: dict[str, dict[str, object]] = {}
    for name, series in df.items():
        entry: dict[str, object] = {"dtype": str(series.dtype), "missing": int(series.isna().sum())}
        if pd.api.types.is_numeric_dtype(series):
            described = series.describe()
            for key in ("mean", "std", "min", "25%", "50%", "75%", "max"):
                entry[key] = float(described[key])
        else:
            entry["counts"] = {str(k): int(v) for k, v in series.value_counts().items()}
        stats[str(name)] = entry
    return stats


def _checks(name: str, col: ColumnConfig, share: float) -> list[pa.Check]:
    checks = []
    if col.min is not None or col.max is not None:
        lo, hi = _bounds(col)
        checks.append(pa.Check(lambda s: ((s < lo) | (s > hi)).mean() <= share, name="range"))
    if col.categories:
        checks.append(pa.Check.isin(col.categories))
    in_domain = domain.check(col)
    if in_domain is not None:
        checks.append(in_domain)
    return checks


def _bounds(col: ColumnConfig) -> tuple[float, float]:
    return (
        col.min if col.min is not None else float("-inf"),
        col.max if col.max is not None else float("inf"),
    )


def _summarise(cases: pd.DataFrame, df: pd.DataFrame, data: DataConfig) -> str:
    parts = []
    for column, group in cases.groupby("column", sort=False, dropna=False):
        coerce = group[group["check"].astype(str).str.startswith("coerce_dtype")]
        group = coerce if not coerce.empty else group
        if coerce.empty:  # a domain is checked on typed values only
            violated = domain.violations(group, data)
            parts += [f"{v.describe()}; {v.rows} row(s) violate it" for v in violated]
            group = group[group["check"].astype(str) != domain.CHECK]
            if violated:  # the domain's line names the rows a plausible range would
                group = group[group["check"].astype(str) != "range"]
            if group.empty:
                continue
        check = str(group["check"].iloc[0])
        examples = _examples(group)
        if check == "range":
            parts.append(_range_problem(str(column), df, data))
            continue
        if check == "not_nullable":
            problem = f"{len(group)} missing value(s); column is not nullable in config"
        elif not coerce.empty:
            problem = f"{len(group)} value(s) not of type {data.columns[str(column)].dtype}"
        elif check.startswith("isin"):
            problem = (
                f"{len(group)} value(s) not in data.columns.{column}.categories {data.columns[str(column)].categories}"
            )
        else:
            problem = f"{len(group)} value(s) fail check {check}"
        parts.append(f"column '{column}': {problem}" + (f" (e.g. {examples})" if examples else ""))
    return "; ".join(parts)


def _examples(group: pd.DataFrame) -> str:
    rows = group.dropna(subset=["index"]).head(3)
    return ", ".join(f"{v!r} at row {int(i)}" for v, i in zip(rows["failure_case"], rows["index"], strict=True))


def _range_problem(column: str, df: pd.DataFrame, data: DataConfig) -> str:
    lo, hi = _bounds(data.columns[column])
    values = pd.to_numeric(df[column], errors="coerce")
    outside = values[(values < lo) | (values > hi)]
    examples = ", ".join(f"{v!r} at row {i}" for i, v in outside.head(3).items())
    return (
        f"column '{column}': {len(outside)} of {len(values)} values ({len(outside) / len(values):.2%})"
        f" outside [{lo:g}, {hi:g}], more than data.max_out_of_range_share="
        f"{data.max_out_of_range_share:.2%} (e.g. {examples})"
    )
