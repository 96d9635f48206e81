"""The compiled graph's profile per stage: node names to stages, sums per call, the warm-up left out."""

import json

import numpy as np
import onnx
import pandas as pd
from benchmarks.graph_profile import after, one_row_split, profile_graph, stage_of, summarise

from housing_mlops.serving.runtime import LAYOUT_KEY, NUMERIC_INPUT


def test_stage_of_a_node_is_its_name_prefix() -> None:
    assert stage_of("features.neighbors/TopK_3") == "features.neighbors"
    assert stage_of("model/TreeEnsembleRegressor") == "model"
    assert stage_of("features") == "assembly"
    assert stage_of("prediction") == "assembly"
    assert stage_of("Squeeze_token_2") == "other"


def node(name: str, op: str, ts: int, dur: int) -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}


def run(ts: int, dur: int) -> dict:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


EVENTS = [
    {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 500},
    node("model/Tree", "TreeEnsembleRegressor", 1000, 900),  # the warm-up run
    run(1000, 1000),
    node("model/Tree", "TreeEnsembleRegressor", 3000, 300),
    node("model/Cast", "Cast", 3300, 100),
    node("features.geo/Exp", "Exp", 3400, 200),
    run(3000, 800),
    node("model/Tree", "TreeEnsembleRegressor", 5000, 500),
    run(5000, 600),
]


def test_after_drops_the_warm_up_runs() -> None:
    kept = after(EVENTS, 1)
    assert kept == EVENTS[3:]
    assert after(EVENTS, 0) == EVENTS


def test_summarise_gives_ms_per_call_by_stage_largest_first() -> None:
    figures = summarise(after(EVENTS, 1), 2, 0.9)
    assert figures == {
        "calls": 2,
        "wall_ms": 0.9,
        "run_ms": 0.7,
        "stages": {
            "model": {"ms": 0.45, "ops": ["Cast", "TreeEnsembleRegressor"]},
            "features.geo": {"ms": 0.1, "ops": ["Exp"]},
        },
    }


def tiny_graph() -> bytes:
    """A compiled-looking graph: one numeric column x, prediction = 2x, with the layout metadata."""
    doubled = onnx.helper.make_node("Add", [NUMERIC_INPUT, NUMERIC_INPUT], ["twice"], name="model/Add")
    shaped = onnx.helper.make_node("Identity", ["twice"], ["prediction"], name="prediction")
    graph = onnx.helper.make_graph(
        [doubled, shaped],
        "tiny",
        [onnx.helper.make_tensor_value_info(NUMERIC_INPUT, onnx.TensorProto.DOUBLE, [None, 1])],
        [onnx.helper.make_tensor_value_info("prediction", onnx.TensorProto.DOUBLE, [None, 1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    onnx.helper.set_model_props(model, {LAYOUT_KEY: json.dumps({"numeric": ["x"], "categorical": []})})
    return model.SerializeToString()


def test_profile_graph_of_a_tiny_compiled_graph() -> None:
    frame = pd.DataFrame({"x": np.arange(5, dtype=float)})
    figures = profile_graph(tiny_graph(), 2, frame, 3)  # 3 chunks per call
    assert figures["rows"] == 5
    assert figures["calls"] == 3
    assert set(figures["stages"]) <= {"model", "assembly", "other"}
    assert "model" in figures["stages"]
    assert figures["wall_ms"] >= figures["run_ms"] > 0


def test_one_row_split_of_a_tiny_compiled_graph() -> None:
    singles = [pd.DataFrame({"x": [float(i)]}) for i in range(5)]
    figures = one_row_split(tiny_graph(), 2, singles)
    assert set(figures) == {"calls", "feeds_us", "run_us", "run_p99_us", "predict_us"}
    assert figures["calls"] == 5
    assert min(figures["feeds_us"], figures["run_us"], figures["predict_us"]) > 0
    assert figures["run_p99_us"] >= figures["run_us"]
