"""deployment: the price table, the workload and the estimates fail at start-up naming the key."""

import dataclasses
import re

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.config.schema import Config
from housing_mlops.errors import ConfigError
from tests.conftest import ROOT


def load(*overrides: str) -> Config:
    return load_config(ROOT / "config", list(overrides))[0]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("~deployment.prices.tpu", "deployment.prices.tpu"),  # a price table missing a target
        ("deployment.prices.gpu=-0.5", "deployment.prices.gpu"),  # a negative price
        ("deployment.workload.latency_slo_ms=0", "deployment.workload.latency_slo_ms"),  # an SLO of 0
        ("deployment.workload.latency_slo_ms=-1", "deployment.workload.latency_slo_ms"),
        ("deployment.workload.requests_per_s=-5", "deployment.workload.requests_per_s"),  # a negative rate
        ("deployment.workload.batch_size=0", "deployment.workload.batch_size"),
        ("deployment.profile.batch_sizes=[100,1000]", "deployment.profile.batch_sizes"),
        ("deployment.profile.calls=5", "deployment.profile.calls"),
        ("deployment.estimates.gpu.row_speedup=0", "deployment.estimates.gpu.row_speedup"),
        ("~deployment.estimates.edge", "deployment.estimates.edge"),
    ],
)
def test_a_bad_deployment_value_names_its_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"config key '{re.escape(key)}'") as info:
        load(override)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["cpu", "cpu-amx", "gpu", "tpu", "edge"])
def test_every_target_needs_a_price(cfg: Config, target: str) -> None:
    prices = {k: v for k, v in cfg.deployment.prices.items() if k != target}
    with pytest.raises(ConfigError, match=rf"'deployment\.prices\.{target}' = 'missing'"):
        dataclasses.replace(cfg.deployment, prices=prices).validate()


def test_a_free_target_is_allowed(cfg: Config) -> None:
    dataclasses.replace(cfg.deployment, prices={**cfg.deployment.prices, "edge": 0.0}).validate()


def test_the_default_workload_and_prices_are_valid(cfg: Config) -> None:
    deployment = cfg.deployment
    assert set(deployment.prices) == {"cpu", "cpu-amx", "gpu", "tpu", "edge"}
    assert set(deployment.estimates) == {"cpu-amx", "gpu", "tpu", "edge"}
    assert 1 in deployment.profile.batch_sizes
    assert load("profile=smoke").deployment.profile.calls < deployment.profile.calls
