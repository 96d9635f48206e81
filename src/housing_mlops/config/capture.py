"""Config section of inference capture: the inference log of serve and predict (config/capture/*.yaml)."""

import os
from dataclasses import dataclass

from housing_mlops.config.checks import require
from housing_mlops.errors import ConfigError

CAPTURE_ENV = "HOUSING_CAPTURE"  # 1/true/yes/on or 0/false/no/off: outranks capture.enabled
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass
class CaptureConfig:
    """Whether and where serve and predict record what they score (config/capture/*.yaml)."""

    enabled: bool
    path: str | None
    queue_size: int
    flush_rows: int
    flush_seconds: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(self.path is None or self.path.strip() != "", "capture.path", self.path, "a folder, or null")
        require(self.queue_size >= 1, "capture.queue_size", self.queue_size, ">= 1")
        require(self.flush_rows >= 1, "capture.flush_rows", self.flush_rows, ">= 1")
        require(0 < self.flush_seconds <= 3600, "capture.flush_seconds", self.flush_seconds, "in (0, 3600]")
        self.is_on()

    def is_on(self) -> bool:
        """`enabled`, unless the HOUSING_CAPTURE environment variable says otherwise."""
        value = os.environ.get(CAPTURE_ENV)
        if value is None:
            return self.enabled
        word = value.strip().lower()
        if word not in _ON + _OFF:
            raise ConfigError(
                f"environment variable {CAPTURE_ENV}={value!r} is not allowed: expected 1 or 0 "
                "(true/false, yes/no, on/off), or unset it to follow config key 'capture.enabled'"
            )
        return word in _ON
