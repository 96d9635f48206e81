"""What every part of the bench shares: where the repo is, the parts, and one run's settings."""

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The floor right after the cold run: their ratio is the overhead only when the machine runs at
# one speed for both, and a shared host drifts (2026-12-06: the same 50 trials took 212.3 s in the
# cold run and 192.4 s in the floor run with the 13-minute busy part between them). The busy part
# last: right after it, the served model's HTTP p50 measured 7.49 ms, and 3.96 ms on its own.
PARTS = ("cold", "floor", "cached", "serving", "monitor", "sweep", "busy")
QUICK_ROWS = 2000


@dataclass
class Settings:
    """One bench run: what it measures, on which data, with which overrides, and where it writes."""

    quick: bool
    parts: tuple[str, ...]
    data: Path  # the CSV every part reads (the sample in quick mode)
    hydra: str  # Hydra overrides for the pipeline and the floor
    out: Path
    work: Path  # temp dir: store, logs, sample
    store: Path  # folder holding mlflow.db
    command: str
    latency_calls: int = 1000
    batch_repeats: int = 20
    cached_repeats: int = 3
    sweep_trials: int = 50
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        """The SQLite tracking store the bench's pipeline runs write to."""
        return f"sqlite:///{self.store / 'mlflow.db'}"

    @property
    def has_store(self) -> bool:
        """Whether the tracking store exists yet (a cold run needs it not to)."""
        return (self.store / "mlflow.db").exists()

    @property
    def env(self) -> dict[str, str]:
        """What `make pipeline` gives `mlflow run`, pointed at the bench's own store."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT"))}
        return inherited | {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "HOUSING_DATA_SOURCE": str(self.data),
            "WANDB_MODE": "disabled",
        }

    def cfg(self) -> Config:
        """The composed config the pipeline and the floor run with."""
        return load_config(ROOT / "config", parse_overrides(self.hydra))[0]
