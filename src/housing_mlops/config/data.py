"""Config sections of the data: source, columns and their roles, ratios, the split."""

import math
from dataclasses import dataclass, fields
from typing import Any

from housing_mlops.config.checks import require

ROLES = ("numeric", "geo", "categorical", "target")
ON_INVALID = ("fail", "drop")
ANY = "any"


@dataclass
class DownloadConfig:
    """Download of data.source (config/data/*.yaml `download`)."""

    timeout_s: float
    retries: int
    backoff_s: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.timeout_s > 0, "data.download.timeout_s", self.timeout_s, "> 0")
        require(self.retries >= 0, "data.download.retries", self.retries, ">= 0")
        require(self.backoff_s >= 0, "data.download.backoff_s", self.backoff_s, ">= 0")


@dataclass
class DomainConfig:
    """data.columns.<name>.domain: the values a row can hold at all; a key left null is not given.

    `ge`/`gt` is the lower bound (inclusive / exclusive), `le`/`lt` the upper one, for numeric
    columns; `categories` is "any" or a list of the column's declared categories.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    categories: Any = None  # "any" or a list of strings (OmegaConf has no str | list type)

    def bounds(self) -> tuple[float, bool, float, bool]:
        """(low, low inclusive, high, high inclusive); an absent side is an infinite, open one."""
        low = self.ge if self.ge is not None else self.gt if self.gt is not None else -math.inf
        high = self.le if self.le is not None else self.lt if self.lt is not None else math.inf
        return low, self.ge is not None, high, self.le is not None

    def is_range(self) -> bool:
        """Whether any numeric bound is given."""
        return any(v is not None for v in (self.ge, self.gt, self.le, self.lt))

    def allowed(self) -> list[str] | None:
        """The allowed categories, or None when any value is (no list given, or "any")."""
        return None if self.categories is None or self.categories == ANY else list(self.categories)

    def describe(self) -> str:
        """The domain in interval or set notation: `[1, inf)`, `(0, 52]`, `{'A', 'B'}`, `any`."""
        allowed = self.allowed()
        if allowed is not None:
            return "{" + ", ".join(repr(c) for c in allowed) + "}"
        if not self.is_range():
            return ANY
        low, low_in, high, high_in = self.bounds()
        return f"{'[' if low_in else '('}{number(low)}, {number(high)}{']' if high_in else ')'}"

    def validate(self, name: str, column: "ColumnConfig") -> None:
        """Raise ConfigError, naming the key, for a domain that contradicts the column's schema."""
        key = f"data.columns.{name}.domain"
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        require(bool(given), key, {}, "at least one of ge, gt, le, lt, categories (or no domain key)")
        for a, b in (("ge", "gt"), ("le", "lt")):
            both = a in given and b in given
            require(not both, f"{key}.{b}", given.get(b), f"no {b} beside {a}: a bound is inclusive or not")
        numeric = column.dtype in ("float", "int")
        for bound in ("ge", "gt", "le", "lt"):
            if bound in given:
                value = given[bound]
                require(
                    numeric, f"{key}.{bound}", value, f"no numeric bound on a {column.dtype} column (use categories)"
                )
                require(not math.isnan(value), f"{key}.{bound}", value, "a number, not nan")
        if self.is_range():
            low, low_in, high, high_in = self.bounds()
            empty = low > high or (low == high and not (low_in and high_in))
            require(not empty, key, self.describe(), "a non-empty range: the lower bound below the upper one")
        if self.categories is not None:
            require(
                not numeric,
                f"{key}.categories",
                self.categories,
                f"no categories on a {column.dtype} column (use ge / gt / le / lt)",
            )
            listed = isinstance(self.categories, list) and all(isinstance(c, str) for c in self.categories)
            ok = self.categories == ANY or (listed and bool(self.categories))
            require(ok, f"{key}.categories", self.categories, f"'{ANY}' or a non-empty list of strings")
            declared = column.categories
            outside = sorted(set(self.allowed() or []) - set(declared)) if declared else []
            require(
                not outside,
                f"{key}.categories",
                self.categories,
                f"a subset of data.columns.{name}.categories {declared} (not {outside})",
            )


def number(value: float) -> str:
    """A bound or value as a user reads it, exactly: -3 for -3.0, 0.4999, 0.9999999999999999, inf."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class ColumnConfig:
    """One entry of data.columns; `min`/`max`/`categories`/`domain` null and `nullable` false mean not given."""

    role: str
    dtype: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: list[str] | None = None
    domain: DomainConfig | None = None


@dataclass
class StratifyConfig:
    """Strata of the split: pd.cut(column, bins)."""

    column: str
    bins: list[float]


@dataclass
class RatioConfig:
    """One entry of data.ratios: a derived numerator / denominator feature."""

    name: str
    numerator: str
    denominator: str


@dataclass
class DataConfig:
    """The dataset (config/data/*.yaml): source, checksum, column roles and validation rules."""

    source: str
    sha256: str | None
    download: DownloadConfig
    target: str
    min_rows: int
    max_out_of_range_share: float
    on_invalid: str
    columns: dict[str, ColumnConfig]
    stratify: StratifyConfig
    ratios: list[RatioConfig]
    log_columns: list[str]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(bool(self.source), "data.source", self.source, "a URL or file path")
        require(self.min_rows >= 1, "data.min_rows", self.min_rows, ">= 1")
        share = self.max_out_of_range_share
        require(0 <= share < 1, "data.max_out_of_range_share", share, "in [0, 1)")
        require(self.on_invalid in ON_INVALID, "data.on_invalid", self.on_invalid, " | ".join(ON_INVALID))
        for name, col in self.columns.items():
            require(col.role in ROLES, f"data.columns.{name}.role", col.role, " | ".join(ROLES))
            require(
                col.dtype in ("float", "int", "str"),
                f"data.columns.{name}.dtype",
                col.dtype,
                "float | int | str",
            )
            if col.domain is not None:
                col.domain.validate(name, col)
        targets = [n for n, c in self.columns.items() if c.role == "target"]
        require(
            targets == [self.target],
            "data.target",
            self.target,
            f"the one column with role 'target' (found {targets})",
        )
        require(
            self.stratify.column in self.columns,
            "data.stratify.column",
            self.stratify.column,
            f"one of {sorted(self.columns)}",
        )
        numeric = self.features("numeric")
        for i, ratio in enumerate(self.ratios):
            for part in ("numerator", "denominator"):
                value = getattr(ratio, part)
                require(value in numeric, f"data.ratios[{i}].{part}", value, f"one of {numeric}")
        for name in self.log_columns:
            require(name in numeric, "data.log_columns", name, f"numeric columns {numeric}")
        bins = self.stratify.bins
        require(
            len(bins) >= 3 and bins == sorted(bins),
            "data.stratify.bins",
            bins,
            "at least 3 increasing edges",
        )

    def features(self, *roles: str) -> list[str]:
        """Feature columns with the given roles (all non-target roles when none given)."""
        wanted = roles or ("numeric", "geo", "categorical")
        return [n for n, c in self.columns.items() if c.role in wanted]


@dataclass
class SplitConfig:
    """The sealed train/test split (config/split/*.yaml)."""

    test_size: float
    seed: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(0 < self.test_size < 1, "split.test_size", self.test_size, "in (0, 1)")
