"""Typed config schema and loading. Hydra composes config/; these dataclasses reject
unknown keys and wrong types, and validate() rejects values out of range."""

import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from housing_mlops.dag import STEPS
from housing_mlops.errors import ConfigError

ROLES = ("numeric", "geo", "categorical", "target")


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' = {value!r} is not allowed: expected {allowed}")


@dataclass
class DownloadConfig:
    timeout_s: float = 30.0
    retries: int = 3
    backoff_s: float = 1.0

    def validate(self) -> None:
        _require(self.timeout_s > 0, "data.download.timeout_s", self.timeout_s, "> 0")
        _require(self.retries >= 0, "data.download.retries", self.retries, ">= 0")
        _require(self.backoff_s >= 0, "data.download.backoff_s", self.backoff_s, ">= 0")


@dataclass
class ColumnConfig:
    role: str = "numeric"
    dtype: str = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = False
    categories: list[str] | None = None


@dataclass
class StratifyConfig:
    column: str = "median_income"
    bins: list[float] = field(default_factory=lambda: [0.0, 1.5, 3.0, 4.5, 6.0, math.inf])


@dataclass
class DataConfig:
    source: str = ""
    sha256: str | None = None
    download: DownloadConfig = field(default_factory=DownloadConfig)
    target: str = "median_house_value"
    min_rows: int = 1000
    max_out_of_range_share: float = 0.001
    columns: dict[str, ColumnConfig] = field(default_factory=dict)
    stratify: StratifyConfig = field(default_factory=StratifyConfig)

    def validate(self) -> None:
        _require(bool(self.source), "data.source", self.source, "a URL or file path")
        _require(self.min_rows >= 1, "data.min_rows", self.min_rows, ">= 1")
        share = self.max_out_of_range_share
        _require(0 <= share < 1, "data.max_out_of_range_share", share, "in [0, 1)")
        for name, col in self.columns.items():
            _require(col.role in ROLES, f"data.columns.{name}.role", col.role, " | ".join(ROLES))
            _require(col.dtype in ("float", "int", "str"), f"data.columns.{name}.dtype",
                     col.dtype, "float | int | str")
        targets = [n for n, c in self.columns.items() if c.role == "target"]
        _require(targets == [self.target], "data.target", self.target,
                 f"the one column with role 'target' (found {targets})")
        _require(self.stratify.column in self.columns, "data.stratify.column",
                 self.stratify.column, f"one of {sorted(self.columns)}")
        bins = self.stratify.bins
        _require(len(bins) >= 3 and bins == sorted(bins), "data.stratify.bins", bins,
                 "at least 3 increasing edges")

    def features(self, *roles: str) -> list[str]:
        """Feature columns with the given roles (all non-target roles when none given)."""
        wanted = roles or ("numeric", "geo", "categorical")
        return [n for n, c in self.columns.items() if c.role in wanted]


@dataclass
class SplitConfig:
    test_size: float = 0.2
    seed: int = 42

    def validate(self) -> None:
        _require(0 < self.test_size < 1, "split.test_size", self.test_size, "in (0, 1)")


@dataclass
class TrackingConfig:
    experiment_name: str = "housing-mlops"


@dataclass
class PipelineConfig:
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    cache: bool = True
    force: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key in ("steps", "force"):
            for name in getattr(self, key):
                _require(name in STEPS, f"pipeline.{key}", name, f"steps among {list(STEPS)}")
        _require(bool(self.steps), "pipeline.steps", self.steps, "at least one step")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def validate(self) -> None:
        self.data.download.validate()
        for section in (self.data, self.split, self.pipeline):
            section.validate()


ConfigStore.instance().store(name="base_config", node=Config)


def parse_overrides(hydra_options: str) -> list[str]:
    """Split one `-P hydra_options="a=1 b=[x,y]"` string into Hydra overrides."""
    try:
        return shlex.split(hydra_options)
    except ValueError as exc:
        raise ConfigError(f"hydra_options {hydra_options!r} cannot be parsed: {exc}") from exc


def load_config(config_dir: Path, overrides: list[str]) -> tuple[Config, dict[str, Any]]:
    """Compose config/ with overrides; return the validated object and its plain dict."""
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            raw = compose(config_name="config", overrides=overrides)
        plain = OmegaConf.to_container(raw, resolve=True)
        cfg = OmegaConf.to_object(raw)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from exc
    # Hydra lets `+key=value` add keys to a typed node; the dataclasses drop them silently.
    extra = _extra_keys(plain, OmegaConf.to_container(OmegaConf.structured(cfg)))
    if extra:
        raise ConfigError(f"config error: unknown key '{extra[0]}' (not in the schema)")
    cfg.validate()
    return cfg, plain


def _extra_keys(given: Any, known: Any, prefix: str = "") -> list[str]:
    if not isinstance(given, dict) or not isinstance(known, dict):
        return []
    found = [f"{prefix}{k}" for k in given if k not in known]
    for k in given.keys() & known.keys():
        found += _extra_keys(given[k], known[k], f"{prefix}{k}.")
    return found


def _one_line(exc: BaseException) -> str:
    """Hydra/OmegaConf messages span lines; keep the cause and the full key."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    full_key = getattr(cause, "full_key", None)
    where = f" (key '{full_key}')" if full_key and full_key not in first else ""
    return f"config error: {first}{where}"
