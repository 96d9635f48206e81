"""Config sections of registration: the promotion gate and the hardware-target rules."""

from dataclasses import dataclass

from housing_mlops.config.checks import require


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
    bootstrap_resamples: int
    bootstrap_confidence: float
    bootstrap_seed: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(bool(self.model_name), "registry.model_name", self.model_name, "a name")
        require(self.min_improvement >= 0, "registry.min_improvement", self.min_improvement, ">= 0")
        require(self.max_wmape > 0, "registry.max_wmape", self.max_wmape, "> 0")
        require(
            self.max_p95_latency_ms > 0,
            "registry.max_p95_latency_ms",
            self.max_p95_latency_ms,
            "> 0",
        )
        require(self.latency_calls >= 10, "registry.latency_calls", self.latency_calls, ">= 10")
        require(
            self.bootstrap_resamples >= 100,
            "registry.bootstrap_resamples",
            self.bootstrap_resamples,
            ">= 100",
        )
        require(
            0 < self.bootstrap_confidence < 1,
            "registry.bootstrap_confidence",
            self.bootstrap_confidence,
            "a fraction in (0, 1), e.g. 0.95",
        )
        require(self.bootstrap_seed >= 0, "registry.bootstrap_seed", self.bootstrap_seed, "an integer >= 0")


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
            require(
                rule.target in TARGETS,
                f"deployment.rules[{i}].target",
                rule.target,
                " | ".join(TARGETS),
            )
            for key in rule.when:
                require(key in FACTS, f"deployment.rules[{i}].when", key, " | ".join(FACTS))
        require(
            bool(self.rules) and not self.rules[-1].when,
            "deployment.rules",
            len(self.rules),
            "a list ending with a catch-all rule (`when: {}`)",
        )
