"""Config section of the registry webhook receiver (config/webhook/*.yaml)."""

import os
import re
from dataclasses import dataclass

from housing_mlops.config.checks import require
from housing_mlops.errors import ConfigError

KNOWN_EVENTS = ("model_version_alias.created", "model_version_alias.deleted")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


@dataclass
class DispatchConfig:
    """The optional GitHub `repository_dispatch` after a champion move (webhook.dispatch)."""

    repository: str | None
    event_type: str
    api_url: str
    token_env: str
    timeout_s: float

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        repo = self.repository
        require(
            repo is None or re.fullmatch(r"[\w.-]+/[\w.-]+", repo) is not None,
            "webhook.dispatch.repository",
            repo,
            "owner/name, or null",
        )
        require(0 < len(self.event_type) <= 100, "webhook.dispatch.event_type", self.event_type, "1-100 characters")
        require(
            self.api_url.startswith(("https://", "http://")), "webhook.dispatch.api_url", self.api_url, "an http(s) URL"
        )
        require(
            bool(_ENV_NAME.fullmatch(self.token_env)), "webhook.dispatch.token_env", self.token_env, "a variable name"
        )
        require(0 < self.timeout_s <= 120, "webhook.dispatch.timeout_s", self.timeout_s, "in (0, 120]")

    def token(self) -> str | None:
        """The token when dispatch is on (None when off); raise ConfigError when on without one."""
        if self.repository is None:
            return None
        value = os.environ.get(self.token_env, "")
        if not value:
            raise ConfigError(
                f"config key 'webhook.dispatch.repository' = {self.repository!r} needs a token in the "
                f"{self.token_env} environment variable (or set webhook.dispatch.repository=null)"
            )
        return value


@dataclass
class WebhookConfig:
    """The registry webhook receiver: where it listens, its MLflow webhook, secret and limits."""

    host: str
    port: int
    url: str | None
    name: str
    secret_env: str
    max_age_s: float
    events: list[str]
    dispatch: DispatchConfig

    def validate(self) -> None:
        """Raise ConfigError, naming the key, for a value out of range."""
        require(bool(self.host), "webhook.host", self.host, "a host name or address")
        require(0 < self.port < 65536, "webhook.port", self.port, "a TCP port in 1-65535")
        require(
            self.url is None or self.url.startswith(("https://", "http://")),
            "webhook.url",
            self.url,
            "an http(s) URL, or null",
        )
        require(0 < len(self.name) <= 256, "webhook.name", self.name, "1-256 characters")
        require(bool(_ENV_NAME.fullmatch(self.secret_env)), "webhook.secret_env", self.secret_env, "a variable name")
        require(0 < self.max_age_s <= 3600, "webhook.max_age_s", self.max_age_s, "in (0, 3600] seconds")
        require(
            bool(self.events) and all(e in KNOWN_EVENTS for e in self.events),
            "webhook.events",
            self.events,
            f"some of {list(KNOWN_EVENTS)}",
        )
        self.dispatch.validate()

    def target(self) -> str:
        """The URL the MLflow server posts to."""
        return self.url or f"http://{self.host}:{self.port}/webhook"

    def secret(self) -> str:
        """The HMAC secret from the environment; raise ConfigError naming the variable when it is unset."""
        value = os.environ.get(self.secret_env, "")
        if len(value) < 16:
            raise ConfigError(
                f"environment variable {self.secret_env} must hold the webhook secret (16+ characters), e.g. "
                f"export {self.secret_env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return value
