"""The host fingerprint, the thread pinning and the load-robust profile of one serving variant."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_info

from housing_mlops.config.registry import ProfileConfig
from housing_mlops.registry import hardware

SETTINGS = ProfileConfig(repeats=2, calls=10, warmup=2, batch_sizes=[1, 50], seed=0)


def frame(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(float(n)), "b": np.arange(float(n)) ** 0.5})


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


def test_thread_counts_are_one_and_all_cores() -> None:
    assert hardware.thread_counts(1) == [1]
    assert hardware.thread_counts(8) == [1, 8]


class OpenMPThreads:
    """A predictor that answers with the OpenMP pool size it runs under."""

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        pools = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
        return np.full(len(rows), pools[0])


def test_thread_limited_pins_the_native_pools_inside_the_call_only() -> None:
    HistGradientBoostingRegressor(max_iter=2).fit(frame(), frame()["a"])  # loads scikit-learn's OpenMP
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
    assert hardware.ThreadLimited(OpenMPThreads(), 1).predict(frame(3)).tolist() == [1, 1, 1]
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"] == before


def test_profile_variant_reports_every_figure_in_order(tmp_path: Path) -> None:
    rows = frame()
    model = HistGradientBoostingRegressor(max_iter=5).fit(rows, rows["a"] * 2)
    (tmp_path / "weights.bin").write_bytes(b"x" * 1024**2)
    built: list[int] = []

    def load(n: int) -> hardware.ThreadLimited:
        built.append(n)
        return hardware.ThreadLimited(model, n)

    profile = hardware.profile_variant(load, rows, [1, 2], tmp_path, SETTINGS)
    assert built == [1, 2]
    assert profile["size_mb"] == 1.0
    assert set(profile["threads"]) == {"1", "2"}
    assert profile["cpu_p95_ms"] == profile["threads"]["1"]["single_row"]["cpu_p95_ms"]
    assert profile["rss_mb"] == max(t["rss_mb"] for t in profile["threads"].values()) >= 0
    assert min(profile["wall_s"], profile["cpu_s"]) > 0
    assert min(profile["load_avg_1m_before"], profile["load_avg_1m_after"]) >= 0
    for figures in profile["threads"].values():
        single = figures["single_row"]
        for kind in ("cpu", "wall"):
            assert 0 < single[f"{kind}_p50_ms"] <= single[f"{kind}_p95_ms"] <= single[f"{kind}_p99_ms"]
        assert set(figures["batches"]) == {"1", "50"}
        for batch in figures["batches"].values():
            assert min(batch.values()) > 0  # wall, thread-CPU and process-CPU ms; rows/s of both clocks
        assert figures["load_s"] >= 0


def test_an_extended_profile_keeps_what_was_measured_and_measures_only_the_new_counts(tmp_path: Path) -> None:
    rows = frame()
    model = HistGradientBoostingRegressor(max_iter=5).fit(rows, rows["a"] * 2)
    built: list[int] = []

    def load(n: int) -> hardware.ThreadLimited:
        built.append(n)
        return hardware.ThreadLimited(model, n)

    first = hardware.profile_variant(load, rows, [1], tmp_path, SETTINGS)
    extended = hardware.profile_variant(load, rows, [1, 2], tmp_path, SETTINGS, first)
    assert built == [1, 2]  # 1 thread was not measured twice
    assert list(extended["threads"]) == ["1", "2"]
    assert extended["threads"]["1"] == first["threads"]["1"]
    assert extended["cpu_p95_ms"] == first["cpu_p95_ms"]
    assert extended["load_avg_1m_before"] == first["load_avg_1m_before"]
    assert extended["wall_s"] > first["wall_s"]
    assert extended["cpu_s"] > first["cpu_s"]
    assert extended["rss_mb"] == max(t["rss_mb"] for t in extended["threads"].values())
    with pytest.raises(ValueError, match="must include 1"):
        hardware.profile_variant(load, rows, [2], tmp_path, SETTINGS)


def test_profile_variant_is_plain_data(tmp_path: Path) -> None:
    # it goes into MLmodel's YAML metadata and into JSON: built-in types only
    model = LinearRegression().fit(frame(), frame()["a"])
    profile = hardware.profile_variant(lambda n: hardware.ThreadLimited(model, n), frame(), [1], tmp_path, SETTINGS)

    def kinds(node: object) -> set[type]:
        if isinstance(node, dict):
            return (
                {str} | {t for v in node.values() for t in kinds(v)}
                if all(isinstance(k, str) for k in node)
                else {dict}
            )
        return {type(node)}

    assert kinds(profile) <= {str, int, float}


def test_profile_variant_needs_the_one_thread_figures(tmp_path: Path) -> None:
    model = LinearRegression().fit(frame(), frame()["a"])
    with pytest.raises(ValueError, match="must include 1"):
        hardware.profile_variant(lambda n: model, frame(), [2], tmp_path, SETTINGS)
