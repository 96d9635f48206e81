"""Typed config schema. Hydra composes config/; these dataclasses reject
unknown keys and wrong types, and validate() rejects values out of range."""

import importlib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from housing_mlops.errors import ConfigError
from housing_mlops.pipeline.dag import STEPS

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
class RatioConfig:
    name: str = ""
    numerator: str = ""
    denominator: str = ""


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
    ratios: list[RatioConfig] = field(default_factory=list)
    log_columns: list[str] = field(default_factory=list)

    def validate(self) -> None:
        _require(bool(self.source), "data.source", self.source, "a URL or file path")
        _require(self.min_rows >= 1, "data.min_rows", self.min_rows, ">= 1")
        share = self.max_out_of_range_share
        _require(0 <= share < 1, "data.max_out_of_range_share", share, "in [0, 1)")
        for name, col in self.columns.items():
            _require(col.role in ROLES, f"data.columns.{name}.role", col.role, " | ".join(ROLES))
            _require(
                col.dtype in ("float", "int", "str"),
                f"data.columns.{name}.dtype",
                col.dtype,
                "float | int | str",
            )
        targets = [n for n, c in self.columns.items() if c.role == "target"]
        _require(
            targets == [self.target],
            "data.target",
            self.target,
            f"the one column with role 'target' (found {targets})",
        )
        _require(
            self.stratify.column in self.columns,
            "data.stratify.column",
            self.stratify.column,
            f"one of {sorted(self.columns)}",
        )
        numeric = self.features("numeric")
        for i, ratio in enumerate(self.ratios):
            for part in ("numerator", "denominator"):
                value = getattr(ratio, part)
                _require(value in numeric, f"data.ratios[{i}].{part}", value, f"one of {numeric}")
        for name in self.log_columns:
            _require(name in numeric, "data.log_columns", name, f"numeric columns {numeric}")
        bins = self.stratify.bins
        _require(
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
    test_size: float = 0.2
    seed: int = 42

    def validate(self) -> None:
        _require(0 < self.test_size < 1, "split.test_size", self.test_size, "in (0, 1)")


@dataclass
class ImputeConfig:
    strategy: str = "auto"
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    folds: int = 3
    mask_fraction: float = 0.1
    seed: int = 42

    def validate(self) -> None:
        allowed = ["auto", *self.strategies]
        _require(self.strategy in allowed, "impute.strategy", self.strategy, " | ".join(allowed))
        _require(self.folds >= 1, "impute.folds", self.folds, ">= 1")
        _require(0 < self.mask_fraction < 1, "impute.mask_fraction", self.mask_fraction, "in (0, 1)")


@dataclass
class FeaturesConfig:
    k_min: int = 5
    k_max: int = 60
    k_step: int = 5
    silhouette_sample: int = 5000
    cv_ks: list[int] = field(default_factory=lambda: [10, 30, 50])
    cv_folds: int = 3
    selection: str = "cv"
    gamma: float = 1.0
    weighted_by_target: bool = False
    n_init: int = 1
    neighbor_ks: list[int] = field(default_factory=lambda: [3, 10, 30])
    seed: int = 42
    preview_rows: int = 5

    def validate(self) -> None:
        _require(2 <= self.k_min <= self.k_max, "features.k_min", self.k_min, "2 <= k_min <= k_max")
        _require(self.k_step >= 1, "features.k_step", self.k_step, ">= 1")
        _require(all(k >= 2 for k in self.cv_ks), "features.cv_ks", self.cv_ks, "values >= 2")
        _require(self.cv_folds >= 2, "features.cv_folds", self.cv_folds, ">= 2")
        _require(
            self.selection in ("cv", "silhouette"),
            "features.selection",
            self.selection,
            "cv | silhouette",
        )
        _require(self.gamma > 0, "features.gamma", self.gamma, "> 0")
        _require(
            all(k >= 1 for k in self.neighbor_ks) and len(set(self.neighbor_ks)) == len(self.neighbor_ks),
            "features.neighbor_ks",
            self.neighbor_ks,
            "distinct integers >= 1 ([] for none)",
        )
        _require(
            self.silhouette_sample >= 100,
            "features.silhouette_sample",
            self.silhouette_sample,
            ">= 100",
        )


@dataclass
class SpaceParam:
    type: str = "float"  # float | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


def _check_space(prefix: str, space: dict[str, SpaceParam]) -> None:
    for key, param in space.items():
        where = f"{prefix}.{key}"
        _require(
            param.type in ("float", "int", "categorical"),
            f"{where}.type",
            param.type,
            "float | int | categorical",
        )
        if param.type == "categorical":
            _require(bool(param.choices), f"{where}.choices", param.choices, "a non-empty list")
        else:
            ok = param.low is not None and param.high is not None and param.low < param.high
            _require(ok, f"{where}.low", param.low, "low < high, both set")


@dataclass
class ModelConfig:
    estimator: str = ""  # import path of an sklearn regressor
    fixed: dict[str, Any] = field(default_factory=dict)
    fast: dict[str, list[Any]] = field(default_factory=dict)
    full: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, SpaceParam] = field(default_factory=dict)


@dataclass
class ModelsConfig:
    candidates: list[str] = field(default_factory=list)
    grid: str = "fast"
    zoo: dict[str, ModelConfig] = field(default_factory=dict)

    def validate(self) -> None:
        _require(bool(self.candidates), "models.candidates", self.candidates, "at least one family")
        for name in self.candidates:
            _require(
                name in self.zoo,
                "models.candidates",
                name,
                f"families in models.zoo {list(self.zoo)}",
            )
        _require(self.grid in ("fast", "full"), "models.grid", self.grid, "fast | full")
        for name, model in self.zoo.items():
            module, _, cls = model.estimator.rpartition(".")
            try:
                getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError, ValueError):
                _require(False, f"models.zoo.{name}.estimator", model.estimator, "an importable class")
            _check_space(f"models.zoo.{name}.space", model.space)


@dataclass
class SelectConfig:
    folds: int = 5
    seed: int = 42
    n_jobs: int = 2
    candidate_timeout_s: float = 300.0

    def validate(self) -> None:
        _require(self.folds >= 2, "select.folds", self.folds, ">= 2")
        _require(self.n_jobs >= 1, "select.n_jobs", self.n_jobs, ">= 1")
        _require(
            self.candidate_timeout_s > 0,
            "select.candidate_timeout_s",
            self.candidate_timeout_s,
            "> 0",
        )


@dataclass
class SweepConfig:
    n_trials: int = 50
    timeout_s: float | None = None
    folds: int = 3
    seed: int = 42
    sampler: str = "tpe"
    n_startup_trials: int = 10
    pruner: str = "median"
    storage: str | None = None
    study_name: str | None = None
    n_workers: int = 1
    n_jobs: int = 2
    feature_space: dict[str, SpaceParam] = field(default_factory=dict)

    def validate(self) -> None:
        _require(self.n_trials >= 1, "sweep.n_trials", self.n_trials, ">= 1")
        _require(
            self.timeout_s is None or self.timeout_s > 0,
            "sweep.timeout_s",
            self.timeout_s,
            "> 0 or null",
        )
        _require(self.folds >= 2, "sweep.folds", self.folds, ">= 2")
        _require(self.sampler in ("tpe", "random"), "sweep.sampler", self.sampler, "tpe | random")
        _require(
            self.pruner in ("median", "wilcoxon", "none"),
            "sweep.pruner",
            self.pruner,
            "median | wilcoxon | none",
        )
        _require(self.n_workers >= 1, "sweep.n_workers", self.n_workers, ">= 1")
        _require(self.n_jobs >= 1, "sweep.n_jobs", self.n_jobs, ">= 1")
        _require(self.n_startup_trials >= 0, "sweep.n_startup_trials", self.n_startup_trials, ">= 0")
        for key in self.feature_space:
            _require(key in ("n_clusters", "gamma"), "sweep.feature_space", key, "n_clusters | gamma")
        _check_space("sweep.feature_space", self.feature_space)


@dataclass
class RegistryConfig:
    model_name: str = "housing_price_model"
    auto_promote: bool = True
    min_improvement: float = 0.0
    max_wmape: float = 0.2
    max_p95_latency_ms: float = 200.0
    importance_rows: int = 1000
    latency_calls: int = 200

    def validate(self) -> None:
        _require(bool(self.model_name), "registry.model_name", self.model_name, "a name")
        _require(self.min_improvement >= 0, "registry.min_improvement", self.min_improvement, ">= 0")
        _require(self.max_wmape > 0, "registry.max_wmape", self.max_wmape, "> 0")
        _require(
            self.max_p95_latency_ms > 0,
            "registry.max_p95_latency_ms",
            self.max_p95_latency_ms,
            "> 0",
        )
        _require(self.latency_calls >= 10, "registry.latency_calls", self.latency_calls, ">= 10")


@dataclass
class WorkloadConfig:
    colocated_with_data: bool = False
    research: bool = False
    high_volume_predictable: bool = False
    on_device: bool = False


@dataclass
class EdgeBudget:
    max_size_mb: float = 50.0
    max_p95_latency_ms: float = 20.0
    max_memory_mb: float = 256.0


@dataclass
class RuleConfig:
    when: dict[str, bool] = field(default_factory=dict)
    target: str = "cpu"
    why: str = ""


TARGETS = ("cpu", "cpu-amx", "gpu", "tpu", "edge")
FACTS = (
    "colocated_with_data",
    "research",
    "high_volume_predictable",
    "on_device",
    "fits_edge",
    "host_amx",
    "host_gpu",
    "dense_model",
)


@dataclass
class DeploymentConfig:
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    edge: EdgeBudget = field(default_factory=EdgeBudget)
    dense_families: list[str] = field(default_factory=list)
    rules: list[RuleConfig] = field(default_factory=list)

    def validate(self) -> None:
        for i, rule in enumerate(self.rules):
            _require(
                rule.target in TARGETS,
                f"deployment.rules[{i}].target",
                rule.target,
                " | ".join(TARGETS),
            )
            for key in rule.when:
                _require(key in FACTS, f"deployment.rules[{i}].when", key, " | ".join(FACTS))
        _require(
            bool(self.rules) and not self.rules[-1].when,
            "deployment.rules",
            len(self.rules),
            "a list ending with a catch-all rule (`when: {}`)",
        )


@dataclass
class TrackingConfig:
    experiment_name: str = "housing-mlops"


WANDB_MODES = ("disabled", "offline", "online")


@dataclass
class WandbConfig:
    """The optional W&B mirror (src/housing_mlops/integrations/wandb_mirror.py); `mode` outranks WANDB_MODE."""

    mode: str = "disabled"
    project: str = "housing-mlops"
    entity: str | None = None
    dir: str | None = None

    def validate(self) -> None:
        _require(self.mode in WANDB_MODES, "wandb.mode", self.mode, " | ".join(WANDB_MODES))
        ok = 0 < len(self.project) <= 128 and not set(self.project) & set("/\\#?%:")
        _require(ok, "wandb.project", self.project, "a W&B project name: 1-128 characters, none of / \\ # ? % :")
        if self.mode == "online" and not os.environ.get("WANDB_API_KEY"):
            raise ConfigError(
                "config key 'wandb.mode' = 'online' needs the WANDB_API_KEY environment variable: "
                "export WANDB_API_KEY=..., or use wandb=offline and `wandb sync` later"
            )


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
    impute: ImputeConfig = field(default_factory=ImputeConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)

    def validate(self) -> None:
        self.data.download.validate()
        for section in (
            self.data,
            self.split,
            self.impute,
            self.features,
            self.models,
            self.select,
            self.sweep,
            self.registry,
            self.deployment,
            self.pipeline,
            self.wandb,
        ):
            section.validate()


ConfigStore.instance().store(name="base_config", node=Config)
