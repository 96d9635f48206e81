"""The promotion gate's pure rules: every check, alone and together.

Most contenders here err by the same amount on every test row (targets 1, predictions
1 + wMAPE): every bootstrap resample then gives the same difference, the interval is a point,
and "exactly at the threshold" is exact with binary-exact fractions. The noise tests build
contenders whose errors vary by row.
"""

import dataclasses

import numpy as np
import pytest

from housing_mlops.config.loading import load_config
from housing_mlops.modeling.comparison import Interval
from housing_mlops.modeling.metrics import wmape
from housing_mlops.registry.gate import Contender, Verdict, decide
from tests.conftest import ROOT

REGISTRY = load_config(ROOT / "config", [])[0].registry
CFG = dataclasses.replace(REGISTRY, min_improvement=0.0625, max_wmape=0.25, max_p95_latency_ms=100.0)
SCHEMA = [{"name": "median_income", "type": "double", "required": True}]
Y = np.ones(64)
BOOTSTRAP = "95 % paired bootstrap, 2,000 resamples, seed 42"


def contender(version: str, wmape: float, p95: float = 10.0, schema: list | None = None) -> Contender:
    return Contender(version, wmape, p95, SCHEMA if schema is None else schema, np.full(Y.size, 1.0 + wmape))


def noisy(version: str, y: np.ndarray, seed: int) -> Contender:
    """A contender with N(0, 0.2) relative errors of its own on the rows `y`."""
    predictions = y * (1 + np.random.default_rng(seed).normal(0, 0.2, y.size))
    return Contender(version, wmape(y, predictions), 10.0, SCHEMA, predictions)


def test_no_champion_within_bounds_promotes() -> None:
    verdict = decide(contender("1", 0.125), None, Y, CFG)
    assert verdict == Verdict(
        True,
        "test wMAPE 0.1250 within bounds; no champion yet",
        "1",
        None,
        None,
        {"max_wmape": True, "max_p95_latency_ms": True},
    )


def test_no_champion_over_max_wmape_holds() -> None:
    verdict = decide(contender("1", 0.3), None, Y, CFG)
    assert not verdict.promote
    assert verdict.checks == {"max_wmape": False, "max_p95_latency_ms": True}
    assert verdict.reason == "test wMAPE 0.3000 > registry.max_wmape 0.25"


def test_wmape_exactly_at_the_bound_passes() -> None:
    assert decide(contender("1", 0.25), None, Y, CFG).promote


def test_over_latency_holds() -> None:
    verdict = decide(contender("1", 0.125, p95=150.0), None, Y, CFG)
    assert not verdict.promote
    assert verdict.checks == {"max_wmape": True, "max_p95_latency_ms": False}
    assert verdict.reason == "p95 latency 150.00 ms > registry.max_p95_latency_ms 100.0"


def test_every_failed_check_is_named_in_the_reason() -> None:
    verdict = decide(contender("2", 0.3, p95=150.0, schema=[]), contender("1", 0.2), Y, CFG)
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
        f"does not beat champion v1 by registry.min_improvement 0.0625: "
        f"wMAPE difference 0.1000 [0.1000, 0.1000] ({BOOTSTRAP})",
    ]


def test_better_than_champion_by_the_margin_promotes() -> None:
    verdict = decide(contender("2", 0.125), contender("1", 0.25), Y, CFG)
    assert verdict.promote
    assert verdict.champion == "1"
    assert verdict.challenger == "2"
    assert verdict.difference == Interval(-0.125, -0.125, -0.125)
    assert verdict.reason == (
        "test wMAPE 0.1250 within bounds; beats champion v1 by registry.min_improvement 0.0625: "
        f"wMAPE difference -0.1250 [-0.1250, -0.1250] ({BOOTSTRAP})"
    )
    assert verdict.checks == dict.fromkeys(("max_wmape", "max_p95_latency_ms", "schema", "min_improvement"), True)


def test_improvement_of_exactly_min_improvement_holds_and_a_hair_more_promotes() -> None:
    # "better by more than min_improvement": the bound is strict
    verdict = decide(contender("2", 0.1875), contender("1", 0.25), Y, CFG)
    assert verdict.difference == Interval(-0.0625, -0.0625, -0.0625)
    assert not verdict.promote
    assert decide(contender("2", 0.1875 - 1e-9), contender("1", 0.25), Y, CFG).promote


def test_better_but_within_min_improvement_holds() -> None:
    verdict = decide(contender("2", 0.1875 + 1e-9), contender("1", 0.25), Y, CFG)
    assert not verdict.promote
    assert verdict.checks["min_improvement"] is False
    assert verdict.checks["schema"] is True
    assert "does not beat champion v1 by registry.min_improvement 0.0625: wMAPE difference -0.0625" in verdict.reason


def test_worse_than_champion_holds() -> None:
    verdict = decide(contender("2", 0.2), contender("1", 0.125), Y, dataclasses.replace(REGISTRY, min_improvement=0.0))
    assert not verdict.promote
    assert verdict.reason == (
        f"does not beat champion v1 by registry.min_improvement 0.0: wMAPE difference 0.0750 [0.0750, 0.0750] "
        f"({BOOTSTRAP})"
    )


def test_a_retrain_with_identical_predictions_is_held_even_without_a_margin() -> None:
    # the interval is [0, 0, 0]: not better, so the champion stays (nothing to gain by moving it)
    no_margin = dataclasses.replace(REGISTRY, min_improvement=0.0)
    verdict = decide(contender("2", 0.125), contender("1", 0.125), Y, no_margin)
    assert verdict.difference == Interval(0.0, 0.0, 0.0)
    assert not verdict.promote
    assert not decide(contender("2", 0.125), contender("1", 0.125), Y, CFG).promote


def test_a_challenger_better_only_by_noise_is_held_without_a_margin() -> None:
    # two models of the same quality: on these rows the challenger's point wMAPE is lower (the
    # old point comparison promoted it), but the paired interval straddles 0
    y = np.random.default_rng(0).uniform(1e5, 5e5, 400)
    challenger, champion = noisy("2", y, seed=3), noisy("1", y, seed=2)
    assert challenger.wmape < champion.wmape
    verdict = decide(challenger, champion, y, dataclasses.replace(REGISTRY, min_improvement=0.0))
    assert verdict.difference is not None
    assert verdict.difference.low < 0 < verdict.difference.high
    assert not verdict.promote
    assert verdict.checks["min_improvement"] is False
    d = verdict.difference
    assert verdict.reason == (
        f"does not beat champion v1 by registry.min_improvement 0.0: wMAPE difference {d.estimate:.4f} "
        f"[{d.low:.4f}, {d.high:.4f}] ({BOOTSTRAP})"
    )


def test_a_consistently_better_challenger_passes_the_noise() -> None:
    y = np.random.default_rng(0).uniform(1e5, 5e5, 400)
    champion = noisy("1", y, seed=2)
    better = y + 0.9 * (champion.predictions - y)  # every row's error 10 % smaller
    challenger = Contender("2", wmape(y, better), 10.0, SCHEMA, better)
    verdict = decide(challenger, champion, y, dataclasses.replace(REGISTRY, min_improvement=0.0))
    assert verdict.difference is not None
    assert verdict.difference.high < 0
    assert verdict.promote
    assert "beats champion v1 by registry.min_improvement 0.0: wMAPE difference" in verdict.reason


def test_the_interval_follows_the_configured_bootstrap() -> None:
    y = np.random.default_rng(0).uniform(1e5, 5e5, 400)
    challenger, champion = noisy("2", y, seed=3), noisy("1", y, seed=2)
    cfg = dataclasses.replace(REGISTRY, bootstrap_resamples=500, bootstrap_confidence=0.8, bootstrap_seed=7)
    verdict = decide(challenger, champion, y, cfg)
    assert "(80 % paired bootstrap, 500 resamples, seed 7)" in verdict.reason
    assert verdict == decide(challenger, champion, y, cfg)  # the seed fixes the interval
    default = decide(challenger, champion, y, REGISTRY).difference
    assert default is not None
    assert verdict.difference is not None
    assert verdict.difference.estimate == default.estimate
    assert default.high - default.low > verdict.difference.high - verdict.difference.low  # 95 % > 80 %


def test_signature_mismatch_holds_even_when_better() -> None:
    other = [{"name": "median_income", "type": "long", "required": True}]
    verdict = decide(contender("2", 0.0625, schema=other), contender("1", 0.25), Y, CFG)
    assert not verdict.promote
    assert verdict.checks["schema"] is False
    assert verdict.checks["min_improvement"] is True
    assert verdict.reason == "input schema differs from champion v1"


def test_champion_bounds_are_not_the_challenger_s() -> None:
    # a champion over the bounds (registered under an older config) does not hold the challenger
    verdict = decide(contender("2", 0.125), contender("1", 0.5, p95=1000.0), Y, CFG)
    assert verdict.promote


@pytest.mark.parametrize("promote", [True, False])
def test_to_dict_is_what_promotion_json_holds(promote: bool) -> None:
    verdict = Verdict(promote, "why", "2", "1", Interval(-0.003, -0.002, -0.001), {"max_wmape": promote})
    assert verdict.to_dict() == {
        "promote": promote,
        "reason": "why",
        "challenger": "2",
        "champion": "1",
        "difference": {"low": -0.003, "estimate": -0.002, "high": -0.001},
        "checks": {"max_wmape": promote},
    }


def test_to_dict_without_a_champion_has_no_difference() -> None:
    assert decide(contender("1", 0.125), None, Y, CFG).to_dict()["difference"] is None
