"""Config loading: compose config/ with Hydra overrides into the validated typed Config."""

import shlex
from pathlib import Path
from typing import Any, cast

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from housing_mlops.config.schema import Config
from housing_mlops.errors import ConfigError


def parse_overrides(hydra_options: str) -> list[str]:
    """Split one `-P hydra_options="a=1 b=[x,y]"` string into Hydra overrides."""
    try:
        return shlex.split(hydra_options)
    except ValueError as exc:
        raise ConfigError(f"hydra_options {hydra_options!r} cannot be parsed: {exc}") from exc


def load_config(config_dir: Path, overrides: list[str], estimators: bool = True) -> tuple[Config, dict[str, Any]]:
    """Compose config/ with overrides; return the validated object and its plain dict.

    `estimators` also imports and checks the model zoo's classes (`ModelsConfig.check_estimators`):
    a caller that builds no model can leave that to the steps that do.
    """
    try:
        with initialize_config_dir(config_dir=str(config_dir.resolve()), version_base="1.3"):
            try:
                raw = compose(config_name="config", overrides=overrides)
            except ValueError as exc:  # Hydra's own check of a group override, e.g. `wandb=null`
                raise ConfigError(f"config error: override {' '.join(overrides)!r}: {_one_line_text(exc)}") from exc
        # The schema holds no defaults: a key the YAML does not set is missing, never silently filled.
        missing = sorted(OmegaConf.missing_keys(raw))
        if missing:
            raise ConfigError(_missing(missing[0]))
        # raw is structured by Config (base_config): to_container gives its dict, to_object a Config
        plain = cast(dict[str, Any], OmegaConf.to_container(raw, resolve=True))
        cfg = cast(Config, OmegaConf.to_object(raw))
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(_one_line(exc)) from exc
    # Hydra lets `+key=value` add keys to a typed node; the dataclasses drop them silently.
    extra = _extra_keys(plain, OmegaConf.to_container(OmegaConf.structured(cfg)))
    if extra:
        raise ConfigError(f"config error: unknown key '{extra[0]}' (not in the schema)")
    cfg.validate()
    if estimators:
        cfg.models.check_estimators()
    return cfg, plain


def _missing(key: str) -> str:
    """One line naming a key without a value and the file that should give it."""
    group = key.split(".")[0].split("[")[0]
    home = "config/config.yaml" if group in ("tracking", "pipeline") else f"config/{group}/<choice>.yaml"
    return f"config error: key '{key}' has no value: set it in {home} (the schema holds no defaults)"


def _extra_keys(given: Any, known: Any, prefix: str = "") -> list[str]:
    if not isinstance(given, dict) or not isinstance(known, dict):
        return []
    found = [f"{prefix}{k}" for k in given if k not in known]
    for k in given.keys() & known.keys():
        found += _extra_keys(given[k], known[k], f"{prefix}{k}.")
    return found


def _one_line_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """Hydra/OmegaConf messages span lines; keep the cause and the full key."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    full_key = getattr(cause, "full_key", None)
    where = f" (key '{full_key}')" if full_key and full_key not in first else ""
    return f"config error: {first}{where}"
