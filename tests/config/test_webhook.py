"""The webhook config section: its checks and the secrets it reads from the environment."""

from pathlib import Path

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


def webhook(*overrides: str):
    return load_config(ROOT / "config", list(overrides))[0].webhook


def test_the_default_target_is_the_receiver_on_loopback() -> None:
    assert webhook().target() == "http://127.0.0.1:5002/webhook"
    assert webhook("webhook.url=http://webhook:5002/webhook").target() == "http://webhook:5002/webhook"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("webhook.port=0", "webhook.port"),
        ("webhook.max_age_s=0", "webhook.max_age_s"),
        ("webhook.events=[model_version.created]", "webhook.events"),
        ("webhook.url=ftp://x", "webhook.url"),
        ("webhook.secret_env=not-a-name", "webhook.secret_env"),
        ("webhook.dispatch.repository=no-slash", "webhook.dispatch.repository"),
    ],
)
def test_a_bad_value_names_its_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        webhook(override)


def test_the_secret_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOUSING_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ConfigError, match="HOUSING_WEBHOOK_SECRET"):
        webhook().secret()
    monkeypatch.setenv("HOUSING_WEBHOOK_SECRET", "short")
    with pytest.raises(ConfigError, match="16"):
        webhook().secret()
    monkeypatch.setenv("HOUSING_WEBHOOK_SECRET", "x" * 32)
    assert webhook().secret() == "x" * 32


def test_dispatch_is_off_by_default_and_needs_a_token_when_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    assert webhook().dispatch.token() is None
    on = webhook("webhook.dispatch.repository=acme/housing")
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        on.dispatch.token()
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    assert on.dispatch.token() == "ghp_x"


def test_the_config_file_names_the_secret_variable_not_a_secret() -> None:
    text = (ROOT / "config" / "webhook" / "default.yaml").read_text()
    assert "secret_env: HOUSING_WEBHOOK_SECRET" in text
    assert Path(ROOT / "config" / "webhook" / "default.yaml").is_file()
