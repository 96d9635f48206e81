"""Where the compiled graph's time goes: ONNX Runtime's own profile, summed per Pipeline stage.

compile.py names every node of the assembled graph `<stage path>/<node>` (`impute.numeric/...`,
`features.neighbors/...`, `model/...`); the two nodes it adds itself are `features` (the Concat of
the engineered features) and `prediction` (the Reshape). ONNX Runtime's profile gives each node's
kernel time per session run; summed per stage and divided by the predict calls, beside the
session's own time (`model_run`) and the wall time of the whole call (feeds from pandas, chunking),
it says which part of a call costs what. Profiling adds a little to every node: a few percent of
a 10,000-row call, several times a one-row call, so one row is split without it (`one_row_split`):
the feeds (pandas to numpy) and the session run, each timed alone.
"""

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

from housing_mlops.serving.runtime import CompiledModel, feeds

ASSEMBLY = ("features", "prediction")  # the graph's own Concat and Reshape, outside any stage
KERNEL = "_kernel_time"


def stage_of(node: str) -> str:
    """The Pipeline stage a node of the assembled graph belongs to (`other`: nodes ONNX Runtime added)."""
    if "/" in node:
        return node.split("/", 1)[0]
    return "assembly" if node in ASSEMBLY else "other"


def summarise(events: list[dict[str, Any]], calls: int, wall_ms: float) -> dict[str, Any]:
    """Per predict call: wall time, session time, and each stage's kernel time and op types (ms)."""
    per_stage: dict[str, float] = defaultdict(float)
    ops: dict[str, set[str]] = defaultdict(set)
    run_us = 0.0
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") == "Session" and name == "model_run":
            run_us += event["dur"]
        elif event.get("cat") == "Node" and name.endswith(KERNEL):
            stage = stage_of(name[: -len(KERNEL)])
            per_stage[stage] += event["dur"]
            ops[stage].add(str(event.get("args", {}).get("op_name", "?")))
    stages = {
        stage: {"ms": round(us / 1000 / calls, 4), "ops": sorted(ops[stage])}
        for stage, us in sorted(per_stage.items(), key=lambda item: -item[1])
    }
    return {"calls": calls, "wall_ms": round(wall_ms, 4), "run_ms": round(run_us / 1000 / calls, 4), "stages": stages}


def profiling_session(graph: bytes, prefix: Path) -> ort.InferenceSession:
    """A session as runtime.session(graph, 1) opens it, with ONNX Runtime's profiler on."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def after(events: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    """The events that start after the first `runs` session runs ended (the warm-up's)."""
    ends = sorted(e["ts"] + e["dur"] for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    if runs == 0:
        return events
    return [e for e in events if e["ts"] >= ends[runs - 1]]


def profile_graph(graph: bytes, chunk_rows: int, frame: pd.DataFrame, calls: int) -> dict[str, Any]:
    """`calls` predict calls of the compiled model on `frame` (after one untimed), profiled per stage."""
    model = CompiledModel(graph, 1, chunk_rows)
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as folder:
        model.session = profiling_session(graph, Path(folder) / "ort")
        model.predict(frame)  # warm-up: its events are dropped
        started = time.perf_counter()
        for _ in range(calls):
            model.predict(frame)
        wall_ms = (time.perf_counter() - started) * 1000 / calls
        events = json.loads(Path(model.session.end_profiling()).read_text())
    chunks = -(-len(frame) // chunk_rows)
    return {"rows": len(frame)} | summarise(after(events, chunks), calls, wall_ms)


def _times_us(call: Any, frames: list[pd.DataFrame]) -> np.ndarray:
    """Microseconds of `call(frame)` for each frame, in order."""
    times = []
    for frame in frames:
        started = time.perf_counter_ns()
        call(frame)
        times.append(time.perf_counter_ns() - started)
    return np.asarray(times, dtype=float) / 1000


def one_row_split(graph: bytes, chunk_rows: int, singles: list[pd.DataFrame]) -> dict[str, Any]:
    """One-row calls on each of `singles`, profiler off: the feeds alone, the session run alone, the whole predict.

    Medians in µs, and the session run's p99: a row whose neighbours lie off the kNN grid is searched
    by brute force, so the tail is the graph's, not the feeds'.
    """
    model = CompiledModel(graph, 1, chunk_rows)
    for frame in singles[:10]:
        model.predict(frame)  # warm-up
    inputs = {id(frame): feeds(frame, model.layout) for frame in singles}
    run = _times_us(lambda frame: model.session.run(None, inputs[id(frame)]), singles)
    return {
        "calls": len(singles),
        "feeds_us": round(float(np.median(_times_us(lambda frame: feeds(frame, model.layout), singles))), 1),
        "run_us": round(float(np.median(run)), 1),
        "run_p99_us": round(float(np.percentile(run, 99)), 1),
        "predict_us": round(float(np.median(_times_us(model.predict, singles))), 1),
    }
