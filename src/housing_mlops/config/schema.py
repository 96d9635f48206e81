"""Typed config schema for what Hydra composes from config/.

These dataclasses reject unknown keys and wrong types, and validate() rejects values out of range.

No default value is written here: config/*.yaml is the one home of every default. A section field
has no default, so OmegaConf marks it missing and a key absent from the YAML fails at start-up,
naming the key. Only entry schemas (one item of a user-extensible dict or list: a column, a ratio,
a search dimension, a model family, a rule) give their optional keys an "absent" value (null,
false, empty), since YAML has no per-item template to hold it. tests/config/test_defaults.py
enforces both rules.
"""

import importlib
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
    """Download of data.source (config/data/*.yaml `download`)."""

    timeout_s: float
    retries: int
    backoff_s: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        _require(self.timeout_s > 0, "data.download.timeout_s", self.timeout_s, "> 0")
        _require(self.retries >= 0, "data.download.retries", self.retries, ">= 0")
        _require(self.backoff_s >= 0, "data.download.backoff_s", self.backoff_s, ">= 0")


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
    """The sealed train/test split (config/split/*.yaml)."""

    test_size: float
    seed: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        _require(0 < self.test_size < 1, "split.test_size", self.test_size, "in (0, 1)")


@dataclass
class ImputeConfig:
    """The imputation contest (config/impute/*.yaml)."""

    strategy: str
    strategies: dict[str, dict[str, Any]]
    folds: int
    mask_fraction: float
    seed: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        allowed = ["auto", *self.strategies]
        _require(self.strategy in allowed, "impute.strategy", self.strategy, " | ".join(allowed))
        _require(self.folds >= 1, "impute.folds", self.folds, ">= 1")
        _require(0 < self.mask_fraction < 1, "impute.mask_fraction", self.mask_fraction, "in (0, 1)")


@dataclass
class FeaturesConfig:
    """Geo-cluster K search and feature settings (config/features/*.yaml)."""

    k_min: int
    k_max: int
    k_step: int
    silhouette_sample: int
    cv_ks: list[int]
    cv_folds: int
    selection: str
    gamma: float
    weighted_by_target: bool
    n_init: int
    neighbor_ks: list[int]
    seed: int
    preview_rows: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """One Optuna search dimension; unset bounds, step or choices are null, `log` false."""

    type: str  # float | int | categorical
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
    """One family of models.zoo; `fixed`/`fast`/`full`/`space` empty when not given."""

    estimator: str  # import path of an sklearn regressor
    fixed: dict[str, Any] = field(default_factory=dict)
    fast: dict[str, list[Any]] = field(default_factory=dict)
    full: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, SpaceParam] = field(default_factory=dict)


@dataclass
class ModelsConfig:
    """The model zoo and which families compete (config/models/*.yaml)."""

    candidates: list[str]
    grid: str
    zoo: dict[str, ModelConfig]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """Cross-validated model selection (config/select/*.yaml)."""

    folds: int
    seed: int
    n_jobs: int
    candidate_timeout_s: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """The Optuna sweep of the winning family (config/sweep/*.yaml)."""

    n_trials: int
    timeout_s: float | None
    folds: int
    seed: int
    sampler: str
    n_startup_trials: int
    pruner: str
    storage: str | None
    study_name: str | None
    n_workers: int
    n_jobs: int
    feature_space: dict[str, SpaceParam]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """Registered model name and the promotion gate (config/registry/*.yaml)."""

    model_name: str
    auto_promote: bool
    min_improvement: float
    max_wmape: float
    max_p95_latency_ms: float
    importance_rows: int
    latency_calls: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """Workload answers the hardware-target rules read (deployment.workload)."""

    colocated_with_data: bool
    research: bool
    high_volume_predictable: bool
    on_device: bool


@dataclass
class EdgeBudget:
    """The on-device budget (deployment.edge)."""

    max_size_mb: float
    max_p95_latency_ms: float
    max_memory_mb: float


@dataclass
class RuleConfig:
    """One hardware-target rule: facts that must hold, the target, and why."""

    when: dict[str, bool]
    target: str
    why: str


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
    """Workload profile and hardware-target rules (config/deployment/*.yaml)."""

    workload: WorkloadConfig
    edge: EdgeBudget
    dense_families: list[str]
    rules: list[RuleConfig]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """MLflow tracking settings (config/config.yaml `tracking`)."""

    experiment_name: str


WANDB_MODES = ("disabled", "offline", "online")


@dataclass
class WandbConfig:
    """The optional W&B mirror (integrations/wandb_mirror.py, config/wandb/*.yaml); `mode` outranks WANDB_MODE."""

    mode: str
    project: str
    entity: str | None
    dir: str | None

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
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
    """Which steps run and how the step cache is used (config/config.yaml `pipeline`)."""

    steps: list[str]
    cache: bool
    force: list[str]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        for key in ("steps", "force"):
            for name in getattr(self, key):
                _require(name in STEPS, f"pipeline.{key}", name, f"steps among {list(STEPS)}")
        _require(bool(self.steps), "pipeline.steps", self.steps, "at least one step")


@dataclass
class Config:
    """The whole composed config: one section per group of config/."""

    data: DataConfig
    split: SplitConfig
    impute: ImputeConfig
    features: FeaturesConfig
    models: ModelsConfig
    select: SelectConfig
    sweep: SweepConfig
    registry: RegistryConfig
    deployment: DeploymentConfig
    tracking: TrackingConfig
    pipeline: PipelineConfig
    wandb: WandbConfig

    def validate(self) -> None:
        """Validate every section; the first bad value raises ConfigError naming its key."""
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
