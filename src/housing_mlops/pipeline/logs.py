"""The lines a user reads: `[step] message` on stdout, `warning: ...` and `error: [step] ...` on stderr.

Library code and steps log through `logging.getLogger(__name__)`; an entry point calls
`configure(step)` once. A record may name another step with `extra={"step": name}` (the
orchestrator reports every step it launches or reuses).
"""

import logging
import sys
from typing import TextIO

_QUIET = ("alembic", "mlflow", "optuna", "urllib3", "git", "matplotlib", "wandb", "httpx")


class _StepFormatter(logging.Formatter):
    def __init__(self, step: str | None) -> None:
        super().__init__()
        self.step = step

    def format(self, record: logging.LogRecord) -> str:
        step = getattr(record, "step", self.step)
        prefix = f"[{step}] " if step else ""
        message = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if record.levelno >= logging.ERROR:
            return f"error: {prefix}{message}"
        if record.levelno >= logging.WARNING:
            return f"warning: {message}"
        return f"{prefix}{message}"


class _Stream(logging.StreamHandler):
    """Writes to sys.stdout or sys.stderr as they are at each record (pytest swaps them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: object) -> None:
        pass


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure(step: str | None = None) -> None:
    """Route INFO to stdout and WARNING+ to stderr for this process, prefixed by `step`."""
    formatter = _StepFormatter(step)
    out = _Stream("stdout")
    out.addFilter(_Below(logging.WARNING))
    err = _Stream("stderr")
    err.setLevel(logging.WARNING)
    for handler in (out, err):
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [out, err]
    root.setLevel(logging.INFO)
    for name in _QUIET:  # their INFO chatter is not the pipeline's
        logging.getLogger(name).setLevel(logging.WARNING)
