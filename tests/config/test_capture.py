"""The capture section: a bad value names its key; HOUSING_CAPTURE turns capture on or off."""

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("capture.queue_size=0", "capture.queue_size"),
        ("capture.flush_rows=0", "capture.flush_rows"),
        ("capture.flush_seconds=0", "capture.flush_seconds"),
        ("capture.path=' '", "capture.path"),
        ("capture.enabled=maybe", "capture.enabled"),
        ("capture.queue=5", "capture.queue"),
    ],
)
def test_a_bad_capture_value_names_its_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        load_config(ROOT / "config", [override])


def test_capture_is_off_by_default_and_the_environment_outranks_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOUSING_CAPTURE", raising=False)
    cfg = load_config(ROOT / "config", [])[0]
    assert (cfg.capture.enabled, cfg.capture.path, cfg.capture.is_on()) == (False, None, False)
    monkeypatch.setenv("HOUSING_CAPTURE", "1")
    assert cfg.capture.is_on()
    monkeypatch.setenv("HOUSING_CAPTURE", "off")
    assert not load_config(ROOT / "config", ["capture.enabled=true"])[0].capture.is_on()
    monkeypatch.setenv("HOUSING_CAPTURE", "sometimes")
    with pytest.raises(
        ConfigError, match=r"environment variable HOUSING_CAPTURE='sometimes' is not allowed: expected 1 or 0"
    ):
        load_config(ROOT / "config", [])
