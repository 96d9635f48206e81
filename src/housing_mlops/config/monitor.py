"""Config section of monitoring: drift and performance thresholds, calibration (config/monitor/*.yaml)."""

import re
from dataclasses import dataclass
from datetime import timedelta

from housing_mlops.config.checks import require

FAIL_ON = ("degraded", "drift", "never")
_WINDOW = re.compile(r"([1-9][0-9]*)([hd])")


def window_span(window: str) -> timedelta:
    """The span of a `monitor.window` string, `<n>h` or `<n>d`; ConfigError naming the key otherwise."""
    match = _WINDOW.fullmatch(window)
    require(match is not None, "monitor.window", window, "<n>h or <n>d, e.g. 24h or 7d")
    assert match is not None
    n = int(match.group(1))
    return timedelta(hours=n) if match.group(2) == "h" else timedelta(days=n)


@dataclass
class BootstrapConfig:
    """The bootstrap interval of a labelled batch's metrics (config/monitor/*.yaml `bootstrap`)."""

    resamples: int
    seed: int
    confidence: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.resamples >= 100, "monitor.bootstrap.resamples", self.resamples, ">= 100")
        require(0 < self.confidence < 1, "monitor.bootstrap.confidence", self.confidence, "in (0, 1)")


@dataclass
class CalibrationConfig:
    """The batches that calibrate the thresholds (config/monitor/*.yaml `calibration`)."""

    resamples: int
    seed: int
    only_column: str
    only_value: str
    scale_column: str
    scale_factor: float
    missing_column: str
    missing_share: float
    shift_columns: list[str]
    shift_by: float
    target_factor: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        key = "monitor.calibration"
        require(self.resamples >= 1, f"{key}.resamples", self.resamples, ">= 1")
        require(self.scale_factor > 0, f"{key}.scale_factor", self.scale_factor, "> 0")
        require(0 < self.missing_share < 1, f"{key}.missing_share", self.missing_share, "in (0, 1)")
        require(bool(self.shift_columns), f"{key}.shift_columns", self.shift_columns, "at least one column")
        require(self.target_factor > 0, f"{key}.target_factor", self.target_factor, "> 0")


@dataclass
class MonitorConfig:
    """How a batch is compared with the champion's reference (config/monitor/*.yaml)."""

    experiment: str
    report_dir: str | None
    min_rows: int
    psi_threshold: float
    p_value: float
    drift_share: float
    examples: int
    bootstrap: BootstrapConfig
    tolerance: float
    fail_on: str
    window: str
    calibration: CalibrationConfig

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(bool(self.experiment), "monitor.experiment", self.experiment, "an experiment name")
        require(self.min_rows >= 10, "monitor.min_rows", self.min_rows, ">= 10")
        require(self.psi_threshold > 0, "monitor.psi_threshold", self.psi_threshold, "> 0")
        require(0 < self.p_value < 1, "monitor.p_value", self.p_value, "in (0, 1)")
        require(0 < self.drift_share <= 1, "monitor.drift_share", self.drift_share, "in (0, 1]")
        require(self.examples >= 0, "monitor.examples", self.examples, ">= 0")
        require(self.tolerance >= 0, "monitor.tolerance", self.tolerance, ">= 0")
        require(self.fail_on in FAIL_ON, "monitor.fail_on", self.fail_on, " | ".join(FAIL_ON))
        window_span(self.window)
        self.bootstrap.validate()
        self.calibration.validate()
