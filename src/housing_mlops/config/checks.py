"""Value checks shared by the config sections: one line naming the key, the value and what is allowed."""

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from housing_mlops.errors import ConfigError


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a ConfigError naming `key`, its value and what is allowed, unless `ok`."""
    if not ok:
        raise ConfigError(f"config key '{key}' = {value!r} is not allowed: expected {allowed}")


def masked_url(url: str) -> str:
    """`url` with its password (if any) replaced by ***: what every message and log line shows."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def url_scheme(url: str) -> str:
    """The dialect of a database URL: `postgresql` for postgresql+psycopg://...; '' without one."""
    return url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
