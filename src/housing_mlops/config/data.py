"""Config sections of the data: source, columns and their roles, ratios, the split."""

from dataclasses import dataclass

from housing_mlops.config.checks import require

ROLES = ("numeric", "geo", "categorical", "target")


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
class ColumnConfig:
    """One entry of data.columns; `min`/`max`/`categories` null and `nullable` false mean not given."""

    role: str
    dtype: str
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: list[str] | None = None


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
        for name, col in self.columns.items():
            require(col.role in ROLES, f"data.columns.{name}.role", col.role, " | ".join(ROLES))
            require(
                col.dtype in ("float", "int", "str"),
                f"data.columns.{name}.dtype",
                col.dtype,
                "float | int | str",
            )
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
