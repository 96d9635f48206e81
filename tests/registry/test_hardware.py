"""Hardware facts and the deployment rule table: host parsing, the profile, each rule."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from housing_mlops.config.registry import DeploymentConfig, RuleConfig
from housing_mlops.config.schema import Config
from housing_mlops.errors import ConfigError
from housing_mlops.registry import hardware

SMALL = {"size_mb": 1.0, "latency_p95_ms": 2.0, "peak_memory_mb": 10.0}
PLAIN_HOST = {"cpu_model": "Test CPU", "cores": 4, "isa": ["avx2"], "memory_gb": 8.0, "gpu": "none"}
AMX_HOST = {**PLAIN_HOST, "isa": ["avx2", "amx_tile"]}


def deployment(cfg: Config, **workload: bool) -> DeploymentConfig:
    return dataclasses.replace(cfg.deployment, workload=dataclasses.replace(cfg.deployment.workload, **workload))


@pytest.mark.parametrize(
    ("workload", "profile", "host", "family", "target", "why"),
    [
        ({"on_device": True}, SMALL, PLAIN_HOST, "hgb", "edge", "on-device workload and the model fits"),
        ({"on_device": True}, {**SMALL, "size_mb": 51.0}, PLAIN_HOST, "hgb", "cpu", "exceeds the edge budget"),
        ({"high_volume_predictable": True}, SMALL, PLAIN_HOST, "ridge", "tpu", "amortises a TPU"),
        ({"research": True}, SMALL, PLAIN_HOST, "lasso", "gpu", "flexible GPU"),
        ({}, SMALL, AMX_HOST, "ridge", "cpu-amx", "AMX tiles"),
        ({}, SMALL, PLAIN_HOST, "ridge", "cpu", "tree ensembles branch per row"),
        ({}, SMALL, AMX_HOST, "hgb", "cpu", "tree ensembles branch per row"),  # AMX helps dense models only
        ({"research": True}, SMALL, PLAIN_HOST, "hgb", "cpu", "tree ensembles"),  # research needs a dense model
        # first match wins: on-device outranks the dense-model rules
        ({"on_device": True, "research": True}, SMALL, AMX_HOST, "ridge", "edge", "on-device workload"),
    ],
)
def test_each_rule_fires_on_its_facts(
    cfg: Config, workload: dict, profile: dict, host: dict, family: str, target: str, why: str
) -> None:
    found = hardware.recommend(profile, host, family, deployment(cfg, **workload))
    assert found.target == target
    assert why in found.rationale


@pytest.mark.parametrize("key", ["size_mb", "latency_p95_ms", "peak_memory_mb"])
def test_edge_budget_is_inclusive_and_each_limit_counts(cfg: Config, key: str) -> None:
    edge = cfg.deployment.edge
    limits = {
        "size_mb": edge.max_size_mb,
        "latency_p95_ms": edge.max_p95_latency_ms,
        "peak_memory_mb": edge.max_memory_mb,
    }
    at_limit = {**SMALL, key: limits[key]}
    over = {**SMALL, key: limits[key] * 1.01}
    on_device = deployment(cfg, on_device=True)
    fits = hardware.recommend(at_limit, PLAIN_HOST, "hgb", on_device)
    assert fits.fits_edge
    assert fits.target == "edge"
    assert "edge budget met" in fits.rationale
    exceeds = hardware.recommend(over, PLAIN_HOST, "hgb", on_device)
    assert not exceeds.fits_edge
    assert exceeds.target == "cpu"
    assert "edge budget not met" in exceeds.rationale


def test_rationale_quotes_the_measured_facts(cfg: Config) -> None:
    found = hardware.recommend(SMALL, PLAIN_HOST, "hgb", cfg.deployment)
    assert "1.0 MB (max 50.0), p95 2.0 ms (max 20.0), peak 10.0 MB (max 256.0)" in found.rationale


def test_a_gpu_host_fact_reaches_the_rules(cfg: Config) -> None:
    rules = [RuleConfig({"host_gpu": True}, "gpu", "a GPU is here"), RuleConfig({}, "cpu", "else")]
    table = dataclasses.replace(cfg.deployment, rules=rules)
    assert hardware.recommend(SMALL, {**PLAIN_HOST, "gpu": "nvidia"}, "hgb", table).target == "gpu"
    assert hardware.recommend(SMALL, PLAIN_HOST, "hgb", table).target == "cpu"


def test_no_matching_rule_is_a_config_error(cfg: Config) -> None:
    table = dataclasses.replace(cfg.deployment, rules=[RuleConfig({"on_device": True}, "edge", "")])
    with pytest.raises(ConfigError, match=r"when: \{\}"):
        hardware.recommend(SMALL, PLAIN_HOST, "hgb", table)


def test_host_fingerprint_parses_proc_files(tmp_path: Path) -> None:
    cpuinfo, meminfo = tmp_path / "cpuinfo", tmp_path / "meminfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example Xeon\nflags\t\t: fpu sse4_2 avx avx2 amx_tile\n")
    meminfo.write_text("MemTotal:       16777216 kB\nMemFree:  1 kB\n")
    host = hardware.host_fingerprint(cpuinfo, meminfo)
    assert host["cpu_model"] == "Example Xeon"
    assert host["isa"] == ["sse4_2", "avx", "avx2", "amx_tile"]
    assert host["memory_gb"] == 16.0


def test_host_fingerprint_without_proc_files(tmp_path: Path) -> None:
    host = hardware.host_fingerprint(tmp_path / "none", tmp_path / "none")
    assert host["isa"] == []
    assert host["memory_gb"] == 0.0
    assert host["cores"] >= 1


def test_measure_reports_size_and_ordered_latencies(tmp_path: Path) -> None:
    rows = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) ** 0.5})
    model = LinearRegression().fit(rows, rows["a"] * 2)
    (tmp_path / "weights.bin").write_bytes(b"x" * 1024**2)
    profile = hardware.measure(tmp_path, lambda _: model, rows, single_row_calls=20, batch_size=100, batch_repeats=2)
    assert profile["size_mb"] == 1.0
    assert 0 < profile["latency_p50_ms"] <= profile["latency_p95_ms"] <= profile["latency_p99_ms"]
    assert profile["batch_rows_per_s"] > 0
    assert profile["load_s"] >= 0


def test_metadata_and_tags_carry_the_same_facts(cfg: Config) -> None:
    target = hardware.recommend(SMALL, AMX_HOST, "ridge", cfg.deployment)
    meta = hardware.metadata(SMALL, AMX_HOST, target)
    assert meta == {**SMALL, "host": AMX_HOST, "target": "cpu-amx", "rationale": target.rationale, "fits_edge": True}
    assert hardware.tags(SMALL, AMX_HOST, target) == {
        "hardware.size_mb": 1.0,
        "hardware.latency_p95_ms": 2.0,
        "hardware.peak_memory_mb": 10.0,
        "hardware.target": "cpu-amx",
        "hardware.fits_edge": True,
        "hardware.cpu_model": "Test CPU",
        "hardware.cores": 4,
        "hardware.isa": "avx2,amx_tile",
        "hardware.gpu": "none",
        "hardware.memory_gb": 8.0,
    }
