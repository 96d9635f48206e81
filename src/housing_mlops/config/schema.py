"""Typed config schema for what Hydra composes from config/.

These dataclasses reject unknown keys and wrong types, and validate() rejects values out of range.

No default value is written here: config/*.yaml is the one home of every default. A section field
has no default, so OmegaConf marks it missing and a key absent from the YAML fails at start-up,
naming the key. Only entry schemas (one item of a user-extensible dict or list: a column, a ratio,
a search dimension, a model family, a rule) give their optional keys an "absent" value (null,
false, empty), since YAML has no per-item template to hold it. tests/config/test_defaults.py
enforces both rules.
"""

import os
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from housing_mlops.config.capture import CaptureConfig
from housing_mlops.config.checks import require
from housing_mlops.config.data import DataConfig, SplitConfig
from housing_mlops.config.modeling import (
    FeaturesConfig,
    ImputeConfig,
    ModelsConfig,
    SelectConfig,
    SweepConfig,
    check_fidelity,
)
from housing_mlops.config.monitor import MonitorConfig
from housing_mlops.config.registry import DeploymentConfig, RegistryConfig
from housing_mlops.config.serving import ServingConfig
from housing_mlops.config.webhook import WebhookConfig
from housing_mlops.errors import ConfigError
from housing_mlops.pipeline.dag import STEPS


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
        require(self.mode in WANDB_MODES, "wandb.mode", self.mode, " | ".join(WANDB_MODES))
        ok = 0 < len(self.project) <= 128 and not set(self.project) & set("/\\#?%:")
        require(ok, "wandb.project", self.project, "a W&B project name: 1-128 characters, none of / \\ # ? % :")
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
    claim_heartbeat_s: int
    step_server: bool

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        for key in ("steps", "force"):
            for name in getattr(self, key):
                require(name in STEPS, f"pipeline.{key}", name, f"steps among {list(STEPS)}")
        require(bool(self.steps), "pipeline.steps", self.steps, "at least one step")
        require(self.claim_heartbeat_s >= 1, "pipeline.claim_heartbeat_s", self.claim_heartbeat_s, ">= 1")


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
    serving: ServingConfig
    monitor: MonitorConfig
    capture: CaptureConfig
    webhook: WebhookConfig
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
            self.serving,
            self.monitor,
            self.capture,
            self.webhook,
            self.pipeline,
            self.wandb,
        ):
            section.validate()
        check_fidelity(self.models, self.sweep)


ConfigStore.instance().store(name="base_config", node=Config)
