"""Config sections of registration: the promotion gate and the hardware-target cost model."""

from dataclasses import dataclass

from housing_mlops.config.checks import require


@dataclass
class ReferenceConfig:
    """What register stores for monitoring with the model version (registry.reference)."""

    bins: int
    folds: int
    seed: int
    n_jobs: int

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(2 <= self.bins <= 100, "registry.reference.bins", self.bins, "in [2, 100]")
        require(self.folds >= 2, "registry.reference.folds", self.folds, ">= 2")
        require(self.seed >= 0, "registry.reference.seed", self.seed, "an integer >= 0")
        require(self.n_jobs >= 1, "registry.reference.n_jobs", self.n_jobs, ">= 1")


@dataclass
class RegistryConfig:
    """Registered model name and the promotion gate (config/registry/*.yaml)."""

    model_name: str
    auto_promote: bool
    min_improvement: float
    max_wmape: float
    max_p95_latency_ms: float
    importance_rows: int
    bootstrap_resamples: int
    bootstrap_confidence: float
    bootstrap_seed: int
    reference: ReferenceConfig

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
        self.reference.validate()


TARGETS = ("cpu", "cpu-amx", "gpu", "tpu", "edge")
ESTIMATED = ("cpu-amx", "gpu", "tpu", "edge")  # targets that may not be measurable on the registering host


@dataclass
class ProfileConfig:
    """How a serving variant is measured (deployment.profile)."""

    repeats: int
    calls: int
    warmup: int
    batch_sizes: list[int]
    seed: int


@dataclass
class WorkloadConfig:
    """The traffic the recommended target must serve (deployment.workload); the SLO is on p95."""

    requests_per_s: float
    batch_size: int
    latency_slo_ms: float


@dataclass
class EdgeBudget:
    """The on-device budget, an eligibility filter for the `edge` target (deployment.edge)."""

    max_size_mb: float
    max_memory_mb: float


@dataclass
class EstimateConfig:
    """How one target not measured on this host is estimated from the measured CPU figures."""

    call_speedup: float
    row_speedup: float
    overhead_ms: float
    assumption: str


@dataclass
class DeploymentConfig:
    """Profiling settings, workload, prices and estimates of the hardware targets (config/deployment/*.yaml)."""

    profile: ProfileConfig
    workload: WorkloadConfig
    edge: EdgeBudget
    prices: dict[str, float]
    estimates: dict[str, EstimateConfig]

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        profile, workload = self.profile, self.workload
        require(profile.repeats >= 1, "deployment.profile.repeats", profile.repeats, ">= 1")
        require(profile.calls >= 10, "deployment.profile.calls", profile.calls, ">= 10 (for a p99)")
        require(profile.warmup >= 0, "deployment.profile.warmup", profile.warmup, ">= 0")
        sizes = profile.batch_sizes
        require(
            bool(sizes) and all(b >= 1 for b in sizes) and 1 in sizes,
            "deployment.profile.batch_sizes",
            sizes,
            "row counts >= 1, including 1",
        )
        require(workload.requests_per_s > 0, "deployment.workload.requests_per_s", workload.requests_per_s, "> 0")
        require(workload.batch_size >= 1, "deployment.workload.batch_size", workload.batch_size, ">= 1 row")
        require(workload.latency_slo_ms > 0, "deployment.workload.latency_slo_ms", workload.latency_slo_ms, "> 0 ms")
        for target in TARGETS:
            require(
                target in self.prices,
                f"deployment.prices.{target}",
                "missing",
                f"a price per hour in USD for each target ({' | '.join(TARGETS)})",
            )
            price = self.prices[target]
            require(price >= 0, f"deployment.prices.{target}", price, "a price per hour in USD, >= 0")
        for target in self.prices:
            require(target in TARGETS, "deployment.prices", target, " | ".join(TARGETS))
        for target in ESTIMATED:
            require(
                target in self.estimates,
                f"deployment.estimates.{target}",
                "missing",
                "call_speedup, row_speedup, overhead_ms and assumption",
            )
            estimate = self.estimates[target]
            for key in ("call_speedup", "row_speedup"):
                value = getattr(estimate, key)
                require(value > 0, f"deployment.estimates.{target}.{key}", value, "> 0")
            require(
                estimate.overhead_ms >= 0,
                f"deployment.estimates.{target}.overhead_ms",
                estimate.overhead_ms,
                ">= 0",
            )
        for target in self.estimates:
            require(target in ESTIMATED, "deployment.estimates", target, " | ".join(ESTIMATED))
