"""The fitted model Pipeline as one ONNX graph: raw columns in, the prediction out.

skl2onnx converts each stage (its own converters, and ours from `converters`); the routing of
named pandas columns between the two ColumnTransformers is written here, because skl2onnx's
ColumnTransformer parser cannot follow names across stages of mixed types (numbers and text).
Graph inputs: `numeric`, float64 [N, n] in the order of `ModelLayout.numeric`, and one string
[N, 1] input per categorical column.
"""

import copy
import json
from dataclasses import asdict
from typing import Any

import numpy as np
import onnx
import pandas as pd
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import VotingRegressor
from sklearn.pipeline import Pipeline

from housing_mlops.errors import HousingError
from housing_mlops.serving import converters
from housing_mlops.serving.runtime import LAYOUT_KEY, NUMERIC_INPUT, ModelLayout, feeds, session

OUTPUT = "prediction"
FEATURES = "features"  # the engineered features, the regressor's input
PREPROCESSOR_STEPS = ("impute", "features", "float32")


class ConversionError(HousingError):
    """A stage of the Pipeline cannot be compiled; the message names it."""


def _stage_name(path: str, stage: Any) -> str:
    return f"stage '{path}' ({type(stage).__name__})"


def _stages(transformer: ColumnTransformer) -> list[tuple[str, Any, list[str]]]:
    """(name, fitted stage or "passthrough", columns) of each branch that produces output.

    A fitted ColumnTransformer replaces "passthrough" by an identity FunctionTransformer; the
    constructor's list says which branches were passthrough.
    """
    given = {name: stage for name, stage, _ in transformer.transformers}
    given["remainder"] = transformer.remainder
    return [
        (name, "passthrough" if given.get(name) == "passthrough" else stage, [str(c) for c in columns])
        for name, stage, columns in transformer.transformers_
        if given.get(name) != "drop" and stage != "drop"
    ]


def _layout(impute: ColumnTransformer) -> tuple[ModelLayout, list[str]]:
    """The input layout, and the names of the impute stage's numeric outputs (same order)."""
    numeric: list[str] = []
    categorical: list[str] = []
    for name, stage, columns in _stages(impute):
        if stage == "passthrough":
            categorical.extend(columns)
            continue
        produced = [str(c) for c in stage.get_feature_names_out(list(columns))]
        if produced != list(columns):
            raise ConversionError(f"{_stage_name('impute.' + name, stage)} changes its columns {columns} -> {produced}")
        numeric.extend(columns)
    return ModelLayout(numeric, categorical), numeric


def _convert_stage(path: str, stage: Any, input_type: Any, opset: int) -> onnx.GraphProto:
    """One stage alone as an ONNX graph with input "x" (skl2onnx's parser and converters)."""
    try:
        # skl2onnx targets ai.onnx.ml 3 at most; our tree converters add opset-5 TreeEnsemble nodes
        target = {"": opset, "ai.onnx.ml": 3}
        return convert_sklearn(stage, initial_types=[("x", input_type)], target_opset=target).graph
    except Exception as exc:  # skl2onnx raises many types; all mean "this stage cannot be converted"
        raise ConversionError(f"{_stage_name(path, stage)} has no ONNX converter: {_first_line(exc)}") from exc


def _opsets(opset: int) -> dict[str, int]:
    return {"": opset, "ai.onnx.ml": converters.ML_OPSET}


class _Assembly:
    """Stage graphs inlined into one, each under its own name prefix."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def stage(self, path: str, stage: Any, source: str, input_type: Any) -> str:
        """Inline `stage` fed by `source`; return the name of its (first) output."""
        graph = _convert_stage(path, stage, input_type, self.opset)
        rename = {"x": source}

        def name(old: str) -> str:
            return rename.get(old, f"{path}/{old}" if old else old)

        for tensor in graph.initializer:
            tensor.name = name(tensor.name)
            self.initializers.append(tensor)
        for node in graph.node:
            node.name = name(node.name)
            node.input[:] = [name(i) for i in node.input]
            node.output[:] = [name(o) for o in node.output]
            self.nodes.append(node)
        return name(graph.output[0].name)

    def model(self, layout: ModelLayout, output: str, width: int) -> onnx.ModelProto:
        """The graph so far as a model with inputs per `layout` and one float64 [N, width] output."""
        inputs = [
            onnx.helper.make_tensor_value_info(NUMERIC_INPUT, onnx.TensorProto.DOUBLE, [None, len(layout.numeric)])
        ]
        inputs += [
            onnx.helper.make_tensor_value_info(c, onnx.TensorProto.STRING, [None, 1]) for c in layout.categorical
        ]
        result = onnx.helper.make_tensor_value_info(output, onnx.TensorProto.DOUBLE, [None, width])
        return onnx.helper.make_model(
            onnx.helper.make_graph(self.nodes, "housing_mlops", inputs, [result], self.initializers),
            opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in _opsets(self.opset).items()],
            producer_name="housing_mlops",
        )

    def node(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(onnx.helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(onnx.numpy_helper.from_array(value, name))
        return name


def compile_pipeline(model: Pipeline, opset: int, reference: pd.DataFrame | None = None) -> onnx.ModelProto:
    """Convert the fitted [impute, features, float32, model] Pipeline into one ONNX graph.

    With `reference` (the training rows), a tree model's split thresholds are aligned with the
    features the graph computes for them (see `align_thresholds`). Raises ConversionError
    naming the first stage that cannot be converted.
    """
    converters.register()
    names = [name for name, _ in model.steps]
    if names[:3] != list(PREPROCESSOR_STEPS) or len(names) != 4:
        raise ConversionError(f"expected Pipeline steps [{', '.join(PREPROCESSOR_STEPS)}, model], got {names}")
    impute, features, _, regressor = (stage for _, stage in model.steps)
    layout, imputed_names = _layout(impute)
    imputers = [(n, s) for n, s, _ in _stages(impute) if s != "passthrough"]
    if len(imputers) != 1:
        raise ConversionError(f"expected one numeric imputer in stage 'impute', got {[n for n, _ in imputers]}")
    graph = _Assembly(opset)
    imputed = graph.stage(
        f"impute.{imputers[0][0]}", imputers[0][1], NUMERIC_INPUT, DoubleTensorType([None, len(layout.numeric)])
    )
    parts = []
    for name, stage, columns in _stages(features):
        path = f"features.{name}"
        if all(c in imputed_names for c in columns):
            index = graph.const(f"{path}/columns", np.array([imputed_names.index(c) for c in columns], np.int64))
            source = graph.node("Gather", [imputed, index], f"{path}/input", axis=1)
            input_type: Any = DoubleTensorType([None, len(columns)])
        elif len(columns) == 1 and columns[0] in layout.categorical:
            source, input_type = columns[0], StringTensorType([None, 1])
        else:
            raise ConversionError(f"stage '{path}' mixes numeric and text columns {columns}")
        out = source if stage == "passthrough" else graph.stage(path, stage, source, input_type)
        parts.append(graph.node("Cast", [out], f"{path}/output", to=onnx.TensorProto.DOUBLE))
    concatenated = graph.node("Concat", parts, "features/concat", axis=1)
    # the "float32" step: IEEE round-to-nearest-even, as numpy's astype
    rounded = graph.node("Cast", [concatenated], "float32/round", to=onnx.TensorProto.FLOAT)
    engineered = graph.node("Cast", [rounded], FEATURES, to=onnx.TensorProto.DOUBLE)
    width = len(model[:-1].get_feature_names_out())
    if reference is not None and converters.tree_model(regressor):
        try:
            computed = _run(graph.model(layout, FEATURES, width), reference, layout)
        except Exception as exc:  # onnxruntime's own error types
            raise ConversionError(f"ONNX Runtime cannot run the feature stages: {_first_line(exc)}") from exc
        regressor = align_thresholds(regressor, model[:-1].transform(reference).to_numpy(np.float64), computed)
    predicted = graph.stage("model", regressor, engineered, DoubleTensorType([None, width]))
    graph.node("Reshape", [predicted, graph.const("prediction_shape", np.array([-1, 1], np.int64))], OUTPUT)
    onx = graph.model(layout, OUTPUT, 1)
    try:
        onnx.checker.check_model(onx)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"the assembled ONNX graph is invalid: {_first_line(exc)}") from exc
    onnx.helper.set_model_props(onx, {LAYOUT_KEY: json.dumps(asdict(layout))})
    try:
        session(onx.SerializeToString(), 1)
    except Exception as exc:  # onnxruntime's own error types; any means the graph cannot be served
        raise ConversionError(f"ONNX Runtime cannot load the assembled graph: {_first_line(exc)}") from exc
    return onx


def _run(onx: onnx.ModelProto, frame: pd.DataFrame, layout: ModelLayout) -> np.ndarray:
    """The graph's output on `frame`, with ONNX Runtime (one thread)."""
    return np.asarray(session(onx.SerializeToString(), 1).run(None, feeds(frame, layout))[0], dtype=np.float64)


# relative headroom of an aligned threshold, per feature: HEADROOM_FACTOR times the largest relative
# difference between the graph's and sklearn's values of that feature on the reference rows, kept
# within [MIN_HEADROOM, HEADROOM]. Features are float32 values (the Pipeline's "float32" step), so the
# graph differs from sklearn only where its float64 value rounded across a float32 boundary; a headroom
# of at most 2**-40 stays far inside float32's spacing (2**-24 relative), where no unseen value can sit.
HEADROOM = 2.0**-40
MIN_HEADROOM = 4 * float(np.finfo(np.float64).eps)
HEADROOM_FACTOR = 2.0


def _headroom(expected: np.ndarray, computed: np.ndarray) -> float:
    """The relative headroom of the thresholds of one feature (its columns of values)."""
    known = np.isfinite(expected) & np.isfinite(computed) & (expected != 0)
    error = np.abs(computed[known] - expected[known]) / np.abs(expected[known])
    return float(np.clip(HEADROOM_FACTOR * error.max(initial=0.0), MIN_HEADROOM, HEADROOM))


def align_thresholds(regressor: Any, expected: np.ndarray, computed: np.ndarray) -> Any:
    """A copy of a tree model (or of an average of them) whose thresholds send the graph's features where sklearn's go.

    scikit-learn's trees split at values that training rows hold exactly (percentiles of
    duplicated values), so a row whose feature equals a threshold goes left. The graph computes
    exp, log and means in another order than numpy, a few units in the last place apart; rounded
    to float32 they agree, except where one rounds across a float32 boundary: such a row would go
    right. Each threshold t that some reference rows hold exactly (`expected[:, j] == t`) moves up
    to the largest value the graph computes for those rows, plus a headroom relative to the
    graph's error on feature j (`_headroom`). Other thresholds are left as they are.
    """
    ceilings, headrooms = [], []
    for j in range(expected.shape[1]):
        frame = pd.DataFrame({"expected": expected[:, j], "computed": computed[:, j]})
        ceilings.append(frame.groupby("expected")["computed"].max())
        headrooms.append(_headroom(expected[:, j], computed[:, j]))

    def align(features: np.ndarray, thresholds: np.ndarray, interior: np.ndarray) -> np.ndarray:
        out = thresholds.copy()
        for j in np.unique(features[interior]):
            at = interior & (features == j)
            ceiling = ceilings[int(j)].reindex(thresholds[at]).to_numpy()
            # headroom above the largest value seen: ONNX Runtime's kernels can differ with the
            # batch size (a row alone vs in a batch: up to ~1,300 ulps on log1p of a small value,
            # an ulp on a similarity), so the ceiling of one batch is not the ceiling of all
            raised = ceiling + np.abs(ceiling) * headrooms[int(j)]
            out[at] = np.fmax(thresholds[at], raised)  # fmax: NaN (no row holds t) keeps t
        return out

    def aligned_copy(model: Any) -> Any:
        aligned = copy.deepcopy(model)
        if hasattr(aligned, "_predictors"):  # HistGradientBoosting
            for predictors in aligned._predictors:
                nodes = predictors[0].nodes
                interior = ~nodes["is_leaf"].astype(bool)
                nodes["num_threshold"] = align(nodes["feature_idx"], nodes["num_threshold"], interior)
            return aligned
        for estimator in np.ravel(getattr(aligned, "estimators_", [aligned])):  # GradientBoosting: 2-D
            state = estimator.tree_.__getstate__()
            nodes = state["nodes"]
            nodes["threshold"] = align(nodes["feature"], nodes["threshold"], nodes["left_child"] >= 0)
            estimator.tree_.__setstate__(state)
        return aligned

    if isinstance(regressor, VotingRegressor):  # an average: each member's trees, on the same features
        average = copy.copy(regressor)
        average.estimators_ = [aligned_copy(member) for member in regressor.estimators_]
        return average
    return aligned_copy(regressor)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
