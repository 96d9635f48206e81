"""The pipeline's composed config, handed to its steps so that none composes it again.

Hydra's compose takes ~0.5 s in a warm process, and every step process composed the same config
the pipeline had (7 times a cold pipeline). The pipeline writes what it composed to a private
file named by `ENV`; a step whose project and `hydra_options` are the pipeline's reads it back.
Anything else (a step run on its own, other overrides, no file) composes as before. So the steps
of one pipeline also run on one config, even if config/ is edited while they run.
"""

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from housing_mlops.config.loading import load_config, parse_overrides
from housing_mlops.config.schema import Config

ENV = "HOUSING_PIPELINE_CONFIG"


@contextlib.contextmanager
def handed_to_steps(root: Path, hydra_options: str, cfg: Config, plain: dict[str, Any]) -> Iterator[None]:
    """While inside, processes started from here find (`cfg`, `plain`) for (`root`, `hydra_options`)."""
    previous = os.environ.get(ENV)
    with tempfile.TemporaryDirectory(prefix="housing-mlops-config-") as folder:  # mode 0700: ours alone
        path = Path(folder) / "config.pickle"
        path.write_bytes(pickle.dumps((_for(root, hydra_options), cfg, plain), protocol=5))
        os.environ[ENV] = str(path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = previous


def config_for(root: Path, hydra_options: str, estimators: bool) -> tuple[Config, dict[str, Any]]:
    """The pipeline's config when it handed one for (`root`, `hydra_options`); else config/ composed.

    `estimators` as in `load_config`: the zoo's classes are checked either way.
    """
    handed = os.environ.get(ENV)
    if handed:
        try:
            meant, cfg, plain = pickle.loads(Path(handed).read_bytes())
        except FileNotFoundError:  # a pipeline that has ended: its file went with it
            meant = None
        if meant == _for(root, hydra_options):
            if estimators:
                cfg.models.check_estimators()
            return cfg, plain
    return load_config(root / "config", parse_overrides(hydra_options), estimators=estimators)


def _for(root: Path, hydra_options: str) -> tuple[str, str]:
    return str(root.resolve()), hydra_options
