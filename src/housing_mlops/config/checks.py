"""Value checks shared by the config sections: one line naming the key, the value and what is allowed."""

from typing import Any

from housing_mlops.errors import ConfigError


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a ConfigError naming `key`, its value and what is allowed, unless `ok`."""
    if not ok:
        raise ConfigError(f"config key '{key}' = {value!r} is not allowed: expected {allowed}")
