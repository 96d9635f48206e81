"""The data's domain (data.columns.<name>.domain) as pandera checks, and its violations in words."""

from dataclasses import dataclass
from numbers import Real

import pandas as pd
import pandera.pandas as pa

from housing_mlops.config.data import ColumnConfig, DataConfig, number

CHECK = "domain"  # the name of every domain check in the schema and in pandera's failure cases


@dataclass(frozen=True)
class Violation:
    """The rows of one column outside its domain: how many, and the first one (row label, value)."""

    column: str
    rows: int
    row: int
    value: object
    domain: str

    def describe(self) -> str:
        """One clause naming the column, the first row and value, the domain and its config key."""
        value = number(float(self.value)) if isinstance(self.value, Real) else repr(self.value)
        return (
            f"column '{self.column}' row {self.row} value {value} is outside its domain {self.domain} "
            f"(data.columns.{self.column}.domain)"
        )


def check(col: ColumnConfig) -> pa.Check | None:
    """The element-wise pandera check of a column's domain (missing values pass), or None."""
    domain = col.domain
    if domain is None:
        return None
    allowed = domain.allowed()
    if allowed is not None:
        return pa.Check(lambda s: s.isin(allowed), name=CHECK)
    if not domain.is_range():
        return None  # categories: any
    low, low_in, high, high_in = domain.bounds()

    def inside(s: pd.Series) -> pd.Series:
        above = s.ge(low) if low_in else s.gt(low)
        below = s.le(high) if high_in else s.lt(high)
        return above & below

    return pa.Check(inside, name=CHECK)


def violations(cases: pd.DataFrame, data: DataConfig) -> list[Violation]:
    """Per column, in config order, the rows that pandera's failure `cases` put outside the domain."""
    found = cases[cases["check"].astype(str) == CHECK].dropna(subset=["index"])
    result = []
    for name, col in data.columns.items():
        group = found[found["column"] == name].sort_values("index", kind="stable")
        if group.empty or col.domain is None:
            continue
        first = group.iloc[0]
        result.append(
            Violation(name, group["index"].nunique(), int(first["index"]), first["failure_case"], col.domain.describe())
        )
    return result


def rows(cases: pd.DataFrame) -> list[int]:
    """The row labels of every domain failure in pandera's failure `cases`, sorted, once each."""
    found = cases[cases["check"].astype(str) == CHECK].dropna(subset=["index"])
    return sorted({int(i) for i in found["index"]})
