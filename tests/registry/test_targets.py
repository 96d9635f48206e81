"""The cost per target on hand-computed numbers, the recommendation, the labels and the outputs."""

import dataclasses
from typing import Any

import pytest

from housing_mlops.config.registry import DeploymentConfig, EstimateConfig, WorkloadConfig
from housing_mlops.config.schema import Config
from housing_mlops.registry import targets

PLAIN_HOST = {"cpu_model": "Test CPU", "cores": 4, "arch": "x86_64", "isa": ["avx2"], "memory_gb": 8.0, "gpu": "none"}
AMX_HOST = {**PLAIN_HOST, "isa": ["avx2", "amx_tile"]}
PRICES = {"cpu": 0.05, "cpu-amx": 0.06, "gpu": 1.0, "tpu": 2.0, "edge": 0.01}
ESTIMATES = {
    "cpu-amx": EstimateConfig(1.0, 1.0, 0.0, "same core"),
    "gpu": EstimateConfig(1.0, 10.0, 1.0, "10x per row, +1 ms"),
    "tpu": EstimateConfig(1.0, 100.0, 3.0, "100x per row, +3 ms"),
    "edge": EstimateConfig(0.5, 0.5, 0.0, "half speed"),
}


def profile(size_mb: float = 1.0, rss_mb: float = 10.0) -> dict[str, Any]:
    """1-thread single-row CPU p95 2 ms; 100 rows in 50 ms of CPU: call 1.5 ms + 0.5 ms per row."""
    single = {"cpu_p50_ms": 1.0, "cpu_p95_ms": 2.0, "cpu_p99_ms": 3.0}
    single |= {"wall_p50_ms": 1.1, "wall_p95_ms": 4.0, "wall_p99_ms": 9.0}
    batch = {"wall_ms": 1.2, "cpu_ms": 1.0, "process_cpu_ms": 1.0, "rows_per_s": 800.0, "cpu_rows_per_s": 1000.0}
    big = {"wall_ms": 60.0, "cpu_ms": 50.0, "process_cpu_ms": 50.0, "rows_per_s": 1666.7, "cpu_rows_per_s": 2000.0}
    one = {"load_s": 0.5, "rss_mb": rss_mb, "single_row": single, "batches": {"1": batch, "100": big}}
    return {
        "size_mb": size_mb,
        "cpu_p95_ms": 2.0,
        "rss_mb": rss_mb,
        "load_avg_1m_before": 0.5,
        "load_avg_1m_after": 0.7,
        "wall_s": 3.0,
        "cpu_s": 2.5,
        "threads": {"1": one},
    }


def deployment(cfg: Config, slo_ms: float = 5.0, requests_per_s: float = 1000.0, batch: int = 1) -> DeploymentConfig:
    return dataclasses.replace(
        cfg.deployment,
        workload=WorkloadConfig(requests_per_s, batch, slo_ms),
        prices=PRICES,
        estimates=ESTIMATES,
    )


def by_target(costs: list[targets.TargetCost]) -> dict[str, targets.TargetCost]:
    return {c.target: c for c in costs}


def test_cost_arithmetic_on_hand_computed_numbers(cfg: Config) -> None:
    costs = by_target(targets.cost_table(profile(), PLAIN_HOST, deployment(cfg)))
    assert list(costs) == ["cpu", "cpu-amx", "gpu", "tpu", "edge"]
    # cpu: 1.5 + 0.5 = 2 ms -> 500 rows/s -> 2 instances for 1,000 rows/s -> $0.10/h over 3.6 M/h
    cpu = costs["cpu"]
    assert (cpu.p95_ms, cpu.rows_per_s, cpu.instances, cpu.usd_per_hour) == (2.0, 500.0, 2, 0.1)
    assert cpu.usd_per_million == pytest.approx(0.1 / 3.6, abs=1e-6)
    # gpu: 1.5 + 0.5/10 + 1 = 2.55 ms -> 392.2 rows/s -> 3 instances at $1/h
    gpu = costs["gpu"]
    assert (gpu.p95_ms, gpu.rows_per_s, gpu.instances, gpu.usd_per_hour) == (2.55, 392.2, 3, 3.0)
    assert gpu.usd_per_million == pytest.approx(3.0 / 3.6, abs=1e-6)
    # tpu: 1.5 + 0.005 + 3 = 4.505 ms -> 5 instances at $2/h
    assert (costs["tpu"].p95_ms, costs["tpu"].instances, costs["tpu"].usd_per_hour) == (4.505, 5, 10.0)
    # edge: (1.5 + 0.5) / 0.5 = 4 ms -> 250 rows/s -> 4 devices at $0.01/h
    edge = costs["edge"]
    assert (edge.p95_ms, edge.rows_per_s, edge.instances, edge.usd_per_hour) == (4.0, 250.0, 4, 0.04)
    assert edge.usd_per_million == pytest.approx(0.04 / 3.6, abs=1e-6)


def test_a_batch_request_adds_the_per_row_time_and_needs_at_least_one_instance(cfg: Config) -> None:
    # 10 rows: 1.5 + 10 * 0.5 = 6.5 ms -> 1,538 rows/s; 1 request/s of 10 rows still needs one vCPU
    cpu = by_target(targets.cost_table(profile(), PLAIN_HOST, deployment(cfg, 10.0, 1.0, 10)))["cpu"]
    assert (cpu.p95_ms, cpu.rows_per_s, cpu.instances) == (6.5, 1538.5, 1)
    assert cpu.usd_per_million == pytest.approx(0.05 / 0.036, abs=1e-6)
    assert cpu.meets_slo


def test_the_cheapest_target_meeting_the_slo_wins(cfg: Config) -> None:
    costs = targets.cost_table(profile(), PLAIN_HOST, deployment(cfg, slo_ms=5.0))
    found = targets.recommend(costs, deployment(cfg, slo_ms=5.0).workload)
    assert found.target == "edge"
    assert "edge (estimated) $0.01111/M, p95 4 ms, 4 instance(s)" in found.rationale
    assert "next cpu (measured) $0.02778/M" in found.rationale


def test_a_cheaper_target_missing_the_slo_is_skipped(cfg: Config) -> None:
    slow = deployment(cfg, slo_ms=3.0)
    costs = targets.cost_table(profile(), PLAIN_HOST, slow)
    assert [c.target for c in costs if not c.meets_slo] == ["tpu", "edge"]
    found = targets.recommend(costs, slow.workload)
    assert found.target == "cpu"
    assert "p95 SLO of 3 ms at 1000 req/s x 1 row(s): cpu (measured) $0.02778/M" in found.rationale
    assert "over the SLO: tpu 4.5 ms, edge 4 ms" in found.rationale


def test_with_no_target_meeting_the_slo_the_fastest_is_named(cfg: Config) -> None:
    tight = deployment(cfg, slo_ms=1.0)
    found = targets.recommend(targets.cost_table(profile(), PLAIN_HOST, tight), tight.workload)
    assert found.target in {"cpu", "cpu-amx"}  # both 2 ms
    assert found.rationale.startswith("no target meets the p95 SLO of 1 ms")


def test_a_model_over_the_edge_budget_is_not_eligible_for_edge(cfg: Config) -> None:
    big = profile(size_mb=cfg.deployment.edge.max_size_mb + 1)
    costs = by_target(targets.cost_table(big, PLAIN_HOST, deployment(cfg)))
    assert not costs["edge"].eligible
    assert "over the edge budget" in costs["edge"].note
    assert targets.recommend(list(costs.values()), deployment(cfg).workload).target == "cpu"


def test_measured_and_estimated_labels_follow_the_host(cfg: Config) -> None:
    plain = by_target(targets.cost_table(profile(), PLAIN_HOST, deployment(cfg)))
    assert {t: c.basis for t, c in plain.items()} == {
        "cpu": "measured",
        "cpu-amx": "estimated",  # no amx flag on this host
        "gpu": "estimated",
        "tpu": "estimated",
        "edge": "estimated",
    }
    assert (plain["cpu-amx"].assumption, plain["cpu"].assumption) == ("same core", "")
    amx = by_target(targets.cost_table(profile(), AMX_HOST, deployment(cfg)))
    assert amx["cpu-amx"].basis == "measured"
    assert (amx["cpu-amx"].p95_ms, amx["cpu-amx"].usd_per_hour) == (2.0, 0.12)  # cpu's figures, its own price


def meta(cfg: Config) -> dict[str, Any]:
    chosen = deployment(cfg)
    costs = targets.cost_table(profile(), PLAIN_HOST, chosen)
    found = targets.recommend(costs, chosen.workload)
    return targets.metadata(PLAIN_HOST, {"sklearn": profile()}, "sklearn", costs, found, chosen.workload)


def test_metadata_carries_host_profiles_costs_and_target(cfg: Config) -> None:
    found = meta(cfg)
    assert (found["target"], found["served"], found["cpu_p95_ms"]) == ("edge", "sklearn", 2.0)
    assert found["host"] == PLAIN_HOST
    assert found["variants"]["sklearn"] == profile()
    assert [c["target"] for c in found["costs"]] == ["cpu", "cpu-amx", "gpu", "tpu", "edge"]
    assert found["workload"] == {"requests_per_s": 1000.0, "batch_size": 1, "latency_slo_ms": 5.0}


def test_tags_are_flat_short_and_carry_the_cost_table(cfg: Config) -> None:
    found = targets.tags(meta(cfg))
    assert found["hardware.target"] == "edge"
    assert found["hardware.cpu_p95_ms"] == 2.0
    assert found["hardware.wall_p95_ms"] == 4.0
    assert found["hardware.size_mb"] == 1.0
    assert found["hardware.load_avg_1m"] == "0.5->0.7"
    assert found["hardware.isa"] == "avx2"
    assert found["hardware.cost.cpu.basis"] == "measured"
    assert found["hardware.cost.gpu.basis"] == "estimated"
    assert found["hardware.cost.edge.usd_per_million"] == pytest.approx(0.04 / 3.6, abs=1e-6)
    assert all(isinstance(v, str | int | float) and len(str(v)) < 300 for v in found.values())


def test_metrics_have_fixed_names(cfg: Config) -> None:
    assert targets.metrics(meta(cfg)) == {
        "hw_cpu_p95_ms": 2.0,
        "hw_wall_p95_ms": 4.0,
        "hw_load_s": 0.5,
        "hw_rss_mb": 10.0,
        "hw_size_mb": 1.0,
        "hw_rows_per_s": 1666.7,
        "hw_usd_per_million": pytest.approx(0.04 / 3.6, abs=1e-6),
    }


def test_card_section_shows_both_tables_and_the_recommendation(cfg: Config) -> None:
    card = targets.card_section(meta(cfg))
    assert "**Recommended:** `edge`: cheapest target meeting the p95 SLO" in card
    assert "| target " in card
    assert "| USD per million " in card
    lines = {line.split("|")[1].strip(): line for line in card.splitlines() if line.startswith("| `")}
    assert "measured" in lines["`cpu`"]
    assert "estimated" in lines["`gpu`"]
    assert "10x per row, +1 ms" in lines["`gpu`"]  # the assumption behind an estimate
    assert "1/2/3" in lines["`sklearn` (served)"]  # CPU p50/p95/p99
    assert "1.1/4/9" in lines["`sklearn` (served)"]  # wall p50/p95/p99
