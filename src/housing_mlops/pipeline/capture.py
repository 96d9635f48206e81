"""Where the inference log lives and whether serve and predict write to it (config `capture`)."""

from pathlib import Path

from housing_mlops.config.schema import Config
from housing_mlops.pipeline.tracking import local_store_dir

LOG_DIR = "inference-log"  # beside the tracking store when capture.path is null


def log_dir(cfg: Config, root: Path) -> Path:
    """The inference log's folder: `capture.path` (relative to the project `root`), else beside the store."""
    if cfg.capture.path is None:
        return local_store_dir(root) / LOG_DIR
    path = Path(cfg.capture.path).expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def capture_dir(cfg: Config, root: Path) -> Path | None:
    """The log's folder when capture is on (capture.enabled or HOUSING_CAPTURE), else None."""
    return log_dir(cfg, root) if cfg.capture.is_on() else None
