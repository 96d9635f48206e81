"""monitor: a bad threshold, bootstrap or calibration value fails naming its key."""

import dataclasses
import re
from typing import Any

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_rows", 5),
        ("psi_threshold", 0.0),
        ("p_value", 1.5),
        ("drift_share", 0.0),
        ("examples", -1),
        ("tolerance", -0.1),
        ("fail_on", "always"),
        ("window", "7w"),
        ("bootstrap.resamples", 10),
        ("bootstrap.confidence", 1.0),
        ("calibration.resamples", 0),
        ("calibration.missing_share", 1.0),
        ("calibration.shift_columns", []),
        ("calibration.target_factor", 0.0),
    ],
)
def test_a_bad_monitor_value_names_its_key(cfg: Config, key: str, value: Any) -> None:
    section, _, name = key.rpartition(".")
    if section:
        inner = dataclasses.replace(getattr(cfg.monitor, section), **{name: value})
        bad = dataclasses.replace(cfg.monitor, **{section: inner})
    else:
        bad = dataclasses.replace(cfg.monitor, **{name: value})
    with pytest.raises(ConfigError, match=f"config key 'monitor.{re.escape(key)}'") as info:
        bad.validate()
    assert "\n" not in str(info.value)


def test_the_yaml_values_are_valid_and_a_typo_fails_at_start_up(cfg: Config) -> None:
    cfg.monitor.validate()
    with pytest.raises(ConfigError, match=r"monitor\.psi_treshold"):
        load_config(ROOT / "config", ["monitor.psi_treshold=0.2"])
