"""Hardware profile of a model's serving variants: the host, and load-robust measurement.

Measurement (`profile_variant`), once per variant and per thread count (1 and all cores):
`load(n)` builds the variant for n native threads; after `deployment.profile.warmup` untimed
calls, the same seeded single rows are predicted `calls` times in each of `repeats` repeats.
Each call is timed twice: wall clock (`perf_counter_ns`) and CPU time of the calling thread
(`thread_time_ns`). Each repeat gives its own p50/p95/p99, and a figure is the median over the
repeats of that percentile, so one disturbed repeat does not move it. Thread CPU time does not
grow when other processes compete for the cores (the scheduler only delays the thread), so the
1-thread single-row CPU-time p95 (`cpu_p95_ms`) is the load-robust figure the gate reads; wall
figures are kept beside it, labelled `wall_`, with the 1-minute load average before and after
and the process's total CPU and wall time. Throughput at each batch size is the median over
`repeats` calls on rows sampled with replacement (seeded). Memory is the resident-set increase
(psutil) from loading the variant and predicting its largest batch.

The cost per target and the recommendation built on these figures: registry/targets.py.
"""

import gc
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import psutil
from threadpoolctl import ThreadpoolController

from housing_mlops.config.registry import ProfileConfig

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
PERCENTILES = (50, 95, 99)
MIB = 1024**2


class Predictor(Protocol):
    """Anything with `predict(frame)`: a sklearn Pipeline, a pyfunc model, an ONNX Runtime wrapper."""

    def predict(self, frame: pd.DataFrame) -> Any:
        """Predictions for the rows of `frame`."""


class ThreadLimited:
    """A predictor whose native thread pools (OpenMP, BLAS) are limited to `n_threads` in each call.

    The limit is set and undone inside `predict`, so it is part of every timed call.
    """

    def __init__(self, predictor: Predictor, n_threads: int) -> None:
        """Wrap an already loaded `predictor` (its native libraries must be loaded by now)."""
        self.predictor = predictor
        self.n_threads = n_threads
        self._controller = ThreadpoolController()

    def predict(self, frame: pd.DataFrame) -> Any:
        """The wrapped predictor's predictions, computed on at most `n_threads` native threads."""
        with self._controller.limit(limits=self.n_threads):
            return self.predictor.predict(frame)


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


def thread_counts(cores: int) -> list[int]:
    """The thread counts a variant is profiled at: 1 and all `cores`."""
    return sorted({1, max(cores, 1)})


def artifact_size_mb(path: Path) -> float:
    """Size of the files under `path` (a saved model folder, or one file), MiB."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / MIB, 3)


def _ms(ns: Sequence[int]) -> np.ndarray:
    return np.asarray(ns, dtype=float) / 1e6


def _single_rows(model: Predictor, singles: list[pd.DataFrame], settings: ProfileConfig) -> dict[str, float]:
    """Median over the repeats of each repeat's p50/p95/p99, thread CPU time and wall clock."""
    for frame in singles[: settings.warmup]:
        model.predict(frame)
    per_repeat: dict[str, list[float]] = {f"{kind}_p{q}_ms": [] for kind in ("cpu", "wall") for q in PERCENTILES}
    for _ in range(settings.repeats):
        cpu, wall = [], []
        for frame in singles:
            cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
            model.predict(frame)
            wall.append(time.perf_counter_ns() - wall0)
            cpu.append(time.thread_time_ns() - cpu0)
        for kind, values in (("cpu", _ms(cpu)), ("wall", _ms(wall))):
            for q in PERCENTILES:
                per_repeat[f"{kind}_p{q}_ms"].append(float(np.percentile(values, q)))
    return {key: round(statistics.median(values), 4) for key, values in per_repeat.items()}


def _batch(model: Predictor, frame: pd.DataFrame, repeats: int) -> dict[str, float]:
    """Median wall, thread-CPU and process-CPU time of one call on `frame`, and its rows per second."""
    model.predict(frame)  # warm-up at this size
    cpu, process, wall = [], [], []
    for _ in range(repeats):
        cpu0, process0, wall0 = time.thread_time_ns(), time.process_time_ns(), time.perf_counter_ns()
        model.predict(frame)
        wall.append(time.perf_counter_ns() - wall0)
        process.append(time.process_time_ns() - process0)
        cpu.append(time.thread_time_ns() - cpu0)
    wall_ms, cpu_ms = statistics.median(_ms(wall)), statistics.median(_ms(cpu))
    return {
        "wall_ms": round(float(wall_ms), 4),
        "cpu_ms": round(float(cpu_ms), 4),
        "process_cpu_ms": round(float(statistics.median(_ms(process))), 4),
        "rows_per_s": round(len(frame) * 1000 / max(float(wall_ms), 1e-6), 1),
        "cpu_rows_per_s": round(len(frame) * 1000 / max(float(cpu_ms), 1e-6), 1),
    }


def profile_variant(
    load: Callable[[int], Predictor],
    rows: pd.DataFrame,
    threads: Sequence[int],
    artifact: Path,
    settings: ProfileConfig,
    earlier: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Profile one serving variant; `load(n)` returns it built for n native threads.

    Returns `size_mb` (of `artifact`), `cpu_p95_ms` (1 thread, the gate's figure), `rss_mb` (the
    largest increase), the load average and total times, and under `threads[str(n)]`: `load_s`,
    `rss_mb`, `single_row` (cpu_/wall_ p50/p95/p99 ms) and `batches[str(size)]` (wall_ms, cpu_ms,
    process_cpu_ms, rows_per_s from wall clock, cpu_rows_per_s from thread CPU time).
    `earlier` is a profile of the same variant to extend: its thread counts are kept as measured
    (the same rows are drawn), its times added.
    """
    by_threads: dict[str, dict[str, Any]] = dict(earlier["threads"]) if earlier else {}
    if "1" not in by_threads and 1 not in threads:
        raise ValueError(f"threads {list(threads)} must include 1: the cost model and the gate read 1-thread figures")
    process = psutil.Process()
    load_before, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    picked = rows.sample(settings.calls, replace=True, random_state=settings.seed)
    singles = [picked.iloc[[i]] for i in range(len(picked))]
    sizes = sorted(set(settings.batch_sizes))
    batches = {b: rows.sample(b, replace=True, random_state=settings.seed) for b in sizes}
    for n in (n for n in threads if str(n) not in by_threads):
        gc.collect()
        rss0, started = process.memory_info().rss, time.perf_counter()
        model = load(n)
        load_s = time.perf_counter() - started
        model.predict(batches[sizes[-1]])
        rss_mb = max(process.memory_info().rss - rss0, 0) / MIB
        by_threads[str(n)] = {
            "load_s": round(load_s, 4),
            "rss_mb": round(rss_mb, 1),
            "single_row": _single_rows(model, singles, settings),
            "batches": {str(b): _batch(model, frame, settings.repeats) for b, frame in batches.items()},
        }
        del model
    before = earlier or {"load_avg_1m_before": round(load_before, 2), "wall_s": 0.0, "cpu_s": 0.0}
    return {
        "size_mb": artifact_size_mb(artifact),
        "cpu_p95_ms": by_threads["1"]["single_row"]["cpu_p95_ms"],
        "rss_mb": max(t["rss_mb"] for t in by_threads.values()),
        "load_avg_1m_before": before["load_avg_1m_before"],
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "wall_s": round(before["wall_s"] + time.perf_counter() - wall0, 3),
        "cpu_s": round(before["cpu_s"] + time.process_time() - cpu0, 3),
        "threads": dict(sorted(by_threads.items(), key=lambda item: int(item[0]))),
    }
