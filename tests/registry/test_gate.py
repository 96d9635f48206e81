"""The promotion gate's pure rules: every check, alone and together."""

import dataclasses

import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.registry.gate import Contender, Verdict, decide
from tests.conftest import ROOT

# binary-exact fractions so that "exactly at the threshold" is exact
REGISTRY = load_config(ROOT / "config", [])[0].registry
CFG = dataclasses.replace(REGISTRY, min_improvement=0.0625, max_wmape=0.25, max_p95_latency_ms=100.0)
SCHEMA = [{"name": "median_income", "type": "double", "required": True}]


def contender(version: str, wmape: float, p95: float = 10.0, schema: list | None = None) -> Contender:
    return Contender(version, wmape, p95, SCHEMA if schema is None else schema)


def test_no_champion_within_bounds_promotes() -> None:
    verdict = decide(contender("1", 0.125), None, CFG)
    assert verdict == Verdict(
        True,
        "test wMAPE 0.1250 within bounds; no champion yet",
        "1",
        None,
        {"max_wmape": True, "max_p95_latency_ms": True},
    )


def test_no_champion_over_max_wmape_holds() -> None:
    verdict = decide(contender("1", 0.3), None, CFG)
    assert not verdict.promote
    assert verdict.checks == {"max_wmape": False, "max_p95_latency_ms": True}
    assert verdict.reason == "test wMAPE 0.3000 > registry.max_wmape 0.25"


def test_wmape_exactly_at_the_bound_passes() -> None:
    assert decide(contender("1", 0.25), None, CFG).promote


def test_over_latency_holds() -> None:
    verdict = decide(contender("1", 0.125, p95=150.0), None, CFG)
    assert not verdict.promote
    assert verdict.checks == {"max_wmape": True, "max_p95_latency_ms": False}
    assert verdict.reason == "p95 latency 150.00 ms > registry.max_p95_latency_ms 100.0"


def test_every_failed_check_is_named_in_the_reason() -> None:
    verdict = decide(contender("2", 0.3, p95=150.0, schema=[]), contender("1", 0.2), CFG)
    assert not verdict.promote
    assert verdict.checks == {
        "max_wmape": False,
        "max_p95_latency_ms": False,
        "schema": False,
        "min_improvement": False,
    }
    assert verdict.reason.split("; ") == [
        "test wMAPE 0.3000 > registry.max_wmape 0.25",
        "p95 latency 150.00 ms > registry.max_p95_latency_ms 100.0",
        "input schema differs from champion v1",
        "test wMAPE 0.3000 does not beat champion v1's 0.2000 by registry.min_improvement 0.0625",
    ]


def test_better_than_champion_by_the_margin_promotes() -> None:
    verdict = decide(contender("2", 0.125), contender("1", 0.25), CFG)
    assert verdict.promote
    assert verdict.champion == "1"
    assert verdict.challenger == "2"
    assert verdict.reason == "test wMAPE 0.1250 within bounds; beats champion v1 (0.2500)"
    assert verdict.checks == dict.fromkeys(("max_wmape", "max_p95_latency_ms", "schema", "min_improvement"), True)


def test_improvement_exactly_min_improvement_promotes() -> None:
    assert decide(contender("2", 0.1875), contender("1", 0.25), CFG).promote


def test_better_but_within_min_improvement_holds() -> None:
    verdict = decide(contender("2", 0.1875 + 1e-9), contender("1", 0.25), CFG)
    assert not verdict.promote
    assert verdict.checks["min_improvement"] is False
    assert verdict.checks["schema"] is True
    assert "does not beat champion v1's 0.2500 by registry.min_improvement 0.0625" in verdict.reason


def test_worse_than_champion_holds() -> None:
    verdict = decide(contender("2", 0.2), contender("1", 0.125), dataclasses.replace(REGISTRY, min_improvement=0.0))
    assert not verdict.promote
    assert verdict.reason == "test wMAPE 0.2000 does not beat champion v1's 0.1250 by registry.min_improvement 0.0"


def test_equal_to_champion_with_no_margin_promotes() -> None:
    # min_improvement 0 means "not worse": a retrain of the same model may take over
    assert decide(
        contender("2", 0.125), contender("1", 0.125), dataclasses.replace(REGISTRY, min_improvement=0.0)
    ).promote


def test_signature_mismatch_holds_even_when_better() -> None:
    other = [{"name": "median_income", "type": "long", "required": True}]
    verdict = decide(contender("2", 0.0625, schema=other), contender("1", 0.25), CFG)
    assert not verdict.promote
    assert verdict.checks["schema"] is False
    assert verdict.checks["min_improvement"] is True
    assert verdict.reason == "input schema differs from champion v1"


def test_champion_bounds_are_not_the_challenger_s() -> None:
    # a champion over the bounds (registered under an older config) does not hold the challenger
    verdict = decide(contender("2", 0.125), contender("1", 0.5, p95=1000.0), CFG)
    assert verdict.promote


@pytest.mark.parametrize("promote", [True, False])
def test_to_dict_is_what_promotion_json_holds(promote: bool) -> None:
    verdict = Verdict(promote, "why", "2", "1", {"max_wmape": promote})
    assert verdict.to_dict() == {
        "promote": promote,
        "reason": "why",
        "challenger": "2",
        "champion": "1",
        "checks": {"max_wmape": promote},
    }
