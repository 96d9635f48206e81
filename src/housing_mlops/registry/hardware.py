"""Hardware-target metadata.

What the registering host is, how the model behaves on it, and which silicon the deployment
profile plus those facts point to.
"""

import os
import platform
import shutil
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from housing_mlops.config.registry import DeploymentConfig
from housing_mlops.errors import ConfigError

ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "sve",
)


def host_fingerprint(cpuinfo: Path = Path("/proc/cpuinfo"), meminfo: Path = Path("/proc/meminfo")) -> dict[str, Any]:
    """CPU model, cores, ISA flags, memory and GPU of this machine (Linux /proc; best effort)."""
    text = cpuinfo.read_text() if cpuinfo.exists() else ""
    fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in text.splitlines()) if v)
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    memory_kb = 0
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    return {
        "cpu_model": fields.get("model name") or fields.get("Model") or platform.processor() or "unknown",
        "cores": os.cpu_count() or 1,
        "arch": platform.machine(),
        "isa": [f for f in ISA_FLAGS if f in flags],
        "memory_gb": round(memory_kb / 1024**2, 1),
        "gpu": _gpu(),
    }


def _gpu() -> str:
    """A GPU is reported only when a driver tool is on PATH; none means CPU-only."""
    if shutil.which("nvidia-smi"):
        return "nvidia"
    if Path("/dev/kfd").exists():
        return "amd"
    return "none"


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    model_dir: Path,
    load: Callable[[str], Any],
    rows: pd.DataFrame,
    single_row_calls: int = 200,
    batch_size: int = 1000,
    batch_repeats: int = 5,
) -> dict[str, float]:
    """Measure the model saved at `model_dir`, loaded with `load`.

    Serialized size, load time, peak Python allocation, single-row latency percentiles and batch
    throughput.
    """
    size = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    tracemalloc.start()
    started = time.perf_counter()
    model = load(str(model_dir))
    load_s = time.perf_counter() - started
    batch = rows.sample(batch_size, replace=len(rows) < batch_size, random_state=0)
    model.predict(batch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    single = rows.head(1)
    model.predict(single)  # warm-up
    latencies = []
    for i in range(single_row_calls):
        row = rows.iloc[[i % len(rows)]]
        started = time.perf_counter()
        model.predict(row)
        latencies.append((time.perf_counter() - started) * 1000)
    batch_times = []
    for _ in range(batch_repeats):
        started = time.perf_counter()
        model.predict(batch)
        batch_times.append(time.perf_counter() - started)
    return {
        "size_mb": round(size / 1024**2, 3),
        "load_s": round(load_s, 4),
        "peak_memory_mb": round(peak / 1024**2, 1),
        "latency_p50_ms": round(_percentile(latencies, 50), 3),
        "latency_p95_ms": round(_percentile(latencies, 95), 3),
        "latency_p99_ms": round(_percentile(latencies, 99), 3),
        "batch_rows_per_s": round(batch_size / statistics.median(batch_times), 1),
    }


@dataclass(frozen=True)
class Recommendation:
    """Where the model should run, why, and whether it fits the on-device budget."""

    target: str
    rationale: str
    fits_edge: bool


def recommend(
    profile: dict[str, float],
    host: dict[str, Any],
    family: str,
    deployment: DeploymentConfig,
) -> Recommendation:
    """First rule of `deployment.rules` whose conditions all hold for these facts."""
    edge = deployment.edge
    fits_edge = (
        profile["size_mb"] <= edge.max_size_mb
        and profile["latency_p95_ms"] <= edge.max_p95_latency_ms
        and profile["peak_memory_mb"] <= edge.max_memory_mb
    )
    facts = {
        "colocated_with_data": deployment.workload.colocated_with_data,
        "research": deployment.workload.research,
        "high_volume_predictable": deployment.workload.high_volume_predictable,
        "on_device": deployment.workload.on_device,
        "fits_edge": fits_edge,
        "host_amx": any(flag.startswith("amx") for flag in host["isa"]),
        "host_gpu": host["gpu"] != "none",
        "dense_model": family in deployment.dense_families,
    }
    edge_note = (
        f"edge budget {'met' if fits_edge else 'not met'}: {profile['size_mb']} MB "
        f"(max {edge.max_size_mb}), p95 {profile['latency_p95_ms']} ms (max {edge.max_p95_latency_ms}),"
        f" peak {profile['peak_memory_mb']} MB (max {edge.max_memory_mb})"
    )
    for rule in deployment.rules:
        if all(facts.get(key) == value for key, value in rule.when.items()):
            return Recommendation(rule.target, f"{rule.why} ({edge_note})", fits_edge)
    raise ConfigError("deployment.rules has no rule matching these facts; end the list with `when: {}`")


def metadata(profile: dict[str, float], host: dict[str, Any], target: Recommendation) -> dict[str, Any]:
    """The `hardware` entry of the logged model's metadata: profile, host and recommendation."""
    return {
        **profile,
        "host": host,
        "target": target.target,
        "rationale": target.rationale,
        "fits_edge": target.fits_edge,
    }


def tags(profile: dict[str, float], host: dict[str, Any], target: Recommendation) -> dict[str, Any]:
    """The `hardware.*` tags of a registered version."""
    return {
        **{f"hardware.{k}": v for k, v in profile.items()},
        "hardware.target": target.target,
        "hardware.fits_edge": target.fits_edge,
        "hardware.cpu_model": host["cpu_model"],
        "hardware.cores": host["cores"],
        "hardware.isa": ",".join(host["isa"]),
        "hardware.gpu": host["gpu"],
        "hardware.memory_gb": host["memory_gb"],
    }
