"""Config section of serving: the compiled variant, its parity check, following champion (config/serving/*.yaml)."""

from dataclasses import dataclass

from housing_mlops.config.checks import require


@dataclass
class ServingConfig:
    """How the registered model is compiled, checked against sklearn and run (config/serving/*.yaml)."""

    compile: bool
    opset: int
    threads: int
    chunk_rows: int
    max_rel_error: float
    poll_s: float | None  # seconds between two reads of the champion alias while serving; None: never

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(13 <= self.opset <= 21, "serving.opset", self.opset, "an ONNX opset in [13, 21]")
        require(self.threads >= 1, "serving.threads", self.threads, ">= 1")
        require(self.chunk_rows >= 1, "serving.chunk_rows", self.chunk_rows, ">= 1")
        require(0 < self.max_rel_error < 1, "serving.max_rel_error", self.max_rel_error, "in (0, 1)")
        poll = self.poll_s
        # a day at most: a longer interval is a typo for null (do not follow)
        require(poll is None or 0 < poll <= 86400, "serving.poll_s", poll, "seconds in (0, 86400], or null")
