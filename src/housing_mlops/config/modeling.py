"""Config sections of the modelling steps: imputation, features, the model zoo, select, sweep."""

import importlib
from dataclasses import dataclass, field
from typing import Any

from housing_mlops.config.checks import masked_url, require, url_scheme

# sweep.storage dialects (Optuna's RDBStorage), "+driver" allowed: postgresql+psycopg://...
STORAGE_SCHEMES = ("sqlite", "postgresql", "mysql")
PRUNERS = ("successive_halving", "hyperband", "median", "wilcoxon", "none")


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
        require(self.strategy in allowed, "impute.strategy", self.strategy, " | ".join(allowed))
        require(self.folds >= 1, "impute.folds", self.folds, ">= 1")
        require(0 < self.mask_fraction < 1, "impute.mask_fraction", self.mask_fraction, "in (0, 1)")


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
        require(2 <= self.k_min <= self.k_max, "features.k_min", self.k_min, "2 <= k_min <= k_max")
        require(self.k_step >= 1, "features.k_step", self.k_step, ">= 1")
        require(all(k >= 2 for k in self.cv_ks), "features.cv_ks", self.cv_ks, "values >= 2")
        require(self.cv_folds >= 2, "features.cv_folds", self.cv_folds, ">= 2")
        require(
            self.selection in ("cv", "silhouette"),
            "features.selection",
            self.selection,
            "cv | silhouette",
        )
        require(self.gamma > 0, "features.gamma", self.gamma, "> 0")
        require(
            all(k >= 1 for k in self.neighbor_ks) and len(set(self.neighbor_ks)) == len(self.neighbor_ks),
            "features.neighbor_ks",
            self.neighbor_ks,
            "distinct integers >= 1 ([] for none)",
        )
        require(
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


def check_space(prefix: str, space: dict[str, SpaceParam]) -> None:
    """Check every dimension of a search space: a known type and, per type, choices or low < high."""
    for key, param in space.items():
        where = f"{prefix}.{key}"
        require(
            param.type in ("float", "int", "categorical"),
            f"{where}.type",
            param.type,
            "float | int | categorical",
        )
        if param.type == "categorical":
            require(bool(param.choices), f"{where}.choices", param.choices, "a non-empty list")
        else:
            ok = param.low is not None and param.high is not None and param.low < param.high
            require(ok, f"{where}.low", param.low, "low < high, both set")


@dataclass
class ModelConfig:
    """One family of models.zoo; `fixed`/`fast`/`full`/`space` empty when not given."""

    estimator: str  # import path of an sklearn regressor
    fixed: dict[str, Any] = field(default_factory=dict)
    fast: dict[str, list[Any]] = field(default_factory=dict)
    full: dict[str, list[Any]] = field(default_factory=dict)
    space: dict[str, SpaceParam] = field(default_factory=dict)
    fidelity: str | None = None  # the parameter a sweep grows in rungs with warm_start (e.g. max_iter)

    def largest(self, param: str) -> float | None:
        """The largest value `param` can take in a sweep: the space's high bound, else its fixed value."""
        if param in self.space:
            return self.space[param].high
        value = self.fixed.get(param)
        return value if isinstance(value, int | float) else None


@dataclass
class ModelsConfig:
    """The model zoo and which families compete (config/models/*.yaml)."""

    candidates: list[str]
    grid: str
    zoo: dict[str, ModelConfig]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(bool(self.candidates), "models.candidates", self.candidates, "at least one family")
        for name in self.candidates:
            require(
                name in self.zoo,
                "models.candidates",
                name,
                f"families in models.zoo {list(self.zoo)}",
            )
        require(self.grid in ("fast", "full"), "models.grid", self.grid, "fast | full")
        for name, model in self.zoo.items():
            check_space(f"models.zoo.{name}.space", model.space)

    def check_estimators(self) -> None:
        """Raise ConfigError, naming the key, for a class that does not import or cannot grow its fidelity.

        Apart from validate: importing the classes imports scikit-learn (~1 s), which only the steps
        that build models need; a step that does not, and a fully cached re-run, never pay it.
        """
        for name, model in self.zoo.items():
            module, _, cls = model.estimator.rpartition(".")
            try:
                estimator = getattr(importlib.import_module(module), cls)
            except (ImportError, AttributeError, ValueError):
                require(False, f"models.zoo.{name}.estimator", model.estimator, "an importable class")
            if model.fidelity is not None:
                params = estimator().get_params()
                require(
                    model.fidelity in params and "warm_start" in params,
                    f"models.zoo.{name}.fidelity",
                    model.fidelity,
                    f"a parameter of {cls} grown with warm_start",
                )


@dataclass
class SelectConfig:
    """Cross-validated model selection (config/select/*.yaml)."""

    folds: int
    seed: int
    n_jobs: int
    candidate_timeout_s: float | None

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.folds >= 2, "select.folds", self.folds, ">= 2")
        require(self.n_jobs >= 1, "select.n_jobs", self.n_jobs, ">= 1")
        require(
            self.candidate_timeout_s is None or self.candidate_timeout_s > 0,
            "select.candidate_timeout_s",
            self.candidate_timeout_s,
            "> 0 or null",
        )


@dataclass
class FidelityConfig:
    """The rungs a sweep trial grows through (the family's `fidelity` parameter), for the rung pruners."""

    min_resource: int
    reduction_factor: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.min_resource >= 1, "sweep.fidelity.min_resource", self.min_resource, ">= 1")
        require(self.reduction_factor >= 2, "sweep.fidelity.reduction_factor", self.reduction_factor, ">= 2")


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
    fidelity: FidelityConfig
    storage: str | None
    study_name: str | None
    heartbeat_s: int
    n_workers: int
    n_jobs: int
    ensemble: int
    feature_space: dict[str, SpaceParam]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.n_trials >= 1, "sweep.n_trials", self.n_trials, ">= 1")
        require(self.ensemble >= 1, "sweep.ensemble", self.ensemble, ">= 1 (1 = the best trial alone)")
        require(
            self.timeout_s is None or self.timeout_s > 0,
            "sweep.timeout_s",
            self.timeout_s,
            "> 0 or null",
        )
        require(self.folds >= 2, "sweep.folds", self.folds, ">= 2")
        require(self.sampler in ("tpe", "random"), "sweep.sampler", self.sampler, "tpe | random")
        require(self.pruner in PRUNERS, "sweep.pruner", self.pruner, " | ".join(PRUNERS))
        self.fidelity.validate()
        require(self.n_workers >= 1, "sweep.n_workers", self.n_workers, ">= 1")
        require(self.heartbeat_s >= 1, "sweep.heartbeat_s", self.heartbeat_s, ">= 1")
        if self.storage is not None:
            require(
                url_scheme(self.storage) in STORAGE_SCHEMES,
                "sweep.storage",
                masked_url(self.storage),
                "a sqlite:///, postgresql:// or mysql:// URL, e.g. postgresql://user@db-host/optuna",
            )
            if url_scheme(self.storage) == "sqlite":  # workers and re-runs share it: a file, not memory
                file = self.storage.partition(":///")[2]
                require(
                    file not in ("", ":memory:"), "sweep.storage", self.storage, "a file, sqlite:///path/studies.db"
                )
        require(self.n_jobs >= 1, "sweep.n_jobs", self.n_jobs, ">= 1")
        require(self.n_startup_trials >= 0, "sweep.n_startup_trials", self.n_startup_trials, ">= 0")
        for key in self.feature_space:
            require(key in ("n_clusters", "gamma"), "sweep.feature_space", key, "n_clusters | gamma")
        check_space("sweep.feature_space", self.feature_space)


def check_fidelity(models: ModelsConfig, sweep: SweepConfig) -> None:
    """A first rung no candidate family can reach is a config error: every trial would skip pruning."""
    for name in models.candidates:
        model = models.zoo[name]
        largest = None if model.fidelity is None else model.largest(model.fidelity)
        if largest is not None:
            require(
                sweep.fidelity.min_resource <= largest,
                "sweep.fidelity.min_resource",
                sweep.fidelity.min_resource,
                f"<= {largest:g}, the largest {model.fidelity} of candidate {name}",
            )
