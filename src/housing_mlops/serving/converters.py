"""skl2onnx converters for the project's own stages, and tree ensembles in double precision.

Every converter computes in float64, as the sklearn stage does, so that a value next to a tree's
split threshold takes the same branch in both runtimes. skl2onnx's own tree converters round
thresholds to float32 attributes; the ones here write ONNX-ML's `*_as_tensor` double attributes.
`register()` installs them through skl2onnx's documented extension point
(`update_registered_converter`); it is idempotent.
"""

from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import DoubleTensorType
from skl2onnx.common.tree_ensemble import (
    add_tree_to_attribute_pairs,
    add_tree_to_attribute_pairs_hist_gradient_boosting,
    get_default_tree_regressor_attribute_pairs,
)
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (unlocks IterativeImputer)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeRegressor

from housing_mlops.features.preprocessing import _log1p_clipped
from housing_mlops.features.transformers import ClusterSimilarity, NeighborTargetFeatures, RatioFeatures
from housing_mlops.serving.neighbors import CellTables, build_tables

TREES = (
    HistGradientBoostingRegressor,
    GradientBoostingRegressor,
    RandomForestRegressor,
    ExtraTreesRegressor,
    DecisionTreeRegressor,
)


class _Graph:
    """Nodes and constants added to skl2onnx's container under unique names."""

    def __init__(self, scope: Any, container: Any) -> None:
        self.scope, self.container = scope, container

    def const(self, value: Any) -> str:
        array = np.asarray(value)
        name = self.scope.get_unique_variable_name("const")
        tensor = numpy_helper.from_array(array, name)
        self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def op(self, op_type: str, *inputs: str, output: str | None = None, domain: str = "", **attrs: Any) -> str:
        out = output or self.scope.get_unique_variable_name(op_type.lower())
        name = self.scope.get_unique_operator_name(op_type)
        if domain:
            self.container.add_node(op_type, list(inputs), [out], op_domain=domain, op_version=3, name=name, **attrs)
        else:
            self.container.add_node(op_type, list(inputs), [out], name=name, **attrs)
        return out


def _width(operator: Any) -> int:
    """Output columns of the stage behind `operator`."""
    stage = operator.raw_operator
    if isinstance(stage, RatioFeatures):
        return len(stage.pairs_)
    if isinstance(stage, ClusterSimilarity):
        return int(stage.cluster_centers_.shape[0])
    if isinstance(stage, NeighborTargetFeatures):
        return len(stage.n_neighbors)
    if isinstance(stage, TREES):
        return 1
    return int(operator.inputs[0].get_second_dimension())  # one-to-one stages


def _double_shape(operator: Any) -> None:
    """Shape calculator: float64 [N, width], whatever the input's element type."""
    rows = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([rows, _width(operator)])


def _io(scope: Any, operator: Any, container: Any) -> tuple[Any, _Graph, str, str]:
    return operator.raw_operator, _Graph(scope, container), operator.inputs[0].full_name, operator.outputs[0].full_name


def _convert_ratio(scope: Any, operator: Any, container: Any) -> None:
    stage, g, x, out = _io(scope, operator, container)
    numerators = g.op("Gather", x, g.ints(*[n for n, _ in stage.pairs_]), axis=1)
    denominators = g.op("Gather", x, g.ints(*[d for _, d in stage.pairs_]), axis=1)
    ratio = g.op("Div", numerators, denominators)
    undefined = g.op("Or", g.op("IsNaN", ratio), g.op("IsInf", ratio))
    g.op("Where", undefined, g.const(np.array([np.nan])), ratio, output=out)


def _convert_log(scope: Any, operator: Any, container: Any) -> None:
    stage, g, x, out = _io(scope, operator, container)
    if stage.func is not _log1p_clipped:
        raise NotImplementedError(f"FunctionTransformer({getattr(stage.func, '__name__', stage.func)!r})")
    zero = g.const(np.array([0.0]))
    # np.clip keeps a NaN; Where(x < 0) does too (NaN < 0 is false), where Max may not
    clipped = g.op("Where", g.op("Less", x, zero), zero, x)
    g.op("Log", g.op("Add", clipped, g.const(np.array([1.0]))), output=out)


def _squared_distances(g: _Graph, x: str, points: np.ndarray) -> str:
    """[N, M] squared distances, summed axis by axis in order (NeighborTargetFeatures does the same)."""
    total = ""
    for axis in range(points.shape[1]):
        column = g.op("Gather", x, g.ints(axis), axis=1)
        diff = g.op("Sub", column, g.const(points[None, :, axis].astype(np.float64)))
        square = g.op("Mul", diff, diff)
        total = g.op("Add", total, square) if total else square
    return total


def _convert_clusters(scope: Any, operator: Any, container: Any) -> None:
    stage, g, x, out = _io(scope, operator, container)
    distances = _squared_distances(g, x, np.asarray(stage.cluster_centers_))
    g.op("Exp", g.op("Mul", distances, g.const(np.array([-float(stage.gamma)]))), output=out)


def _top_k(g: _Graph, distances: str, k: int) -> str:
    """Positions of the k smallest per row; TopK breaks ties by the lower position."""
    values = g.scope.get_unique_variable_name("nearest_distances")
    positions = g.scope.get_unique_variable_name("nearest_positions")
    g.container.add_node(
        "TopK",
        [distances, g.ints(k)],
        [values, positions],
        axis=1,
        largest=0,
        sorted=1,
        name=g.scope.get_unique_operator_name("TopK"),
    )
    return positions


def _column(g: _Graph, x: str, axis: int) -> str:
    """Column `axis` of a [N, 2] tensor as [N]."""
    return g.op("Gather", x, g.const(np.array(axis, dtype=np.int64)), axis=1)


def _cells(g: _Graph, x: str, tables: CellTables) -> tuple[str, str]:
    """Each row's candidate row of tables.candidates ([N] int64, 0 when off) and whether it has one ([N])."""
    scaled = g.op("Floor", g.op("Div", g.op("Sub", x, g.const(tables.origin[None])), g.const([tables.fine_size])))
    # comparisons are false for NaN: such a row is off the grid
    within = g.op(
        "And",
        g.op("GreaterOrEqual", scaled, g.const([0.0])),
        g.op("Less", scaled, g.const(np.array([tables.fine_shape], dtype=np.float64))),
    )
    inside = g.op("And", _column(g, within, 0), _column(g, within, 1))
    fine = g.op(
        "Cast", g.op("Where", g.op("Unsqueeze", inside, g.ints(1)), scaled, g.const([0.0])), to=TensorProto.INT64
    )
    split = g.ints(tables.split)
    coarse_xy = g.op("Div", fine, split)
    coarse = g.op(
        "Add", g.op("Mul", _column(g, coarse_xy, 1), g.ints(tables.coarse_shape[0])), _column(g, coarse_xy, 0)
    )
    divisor = g.op("Unsqueeze", g.op("Gather", g.const(tables.divisor), coarse), g.ints(1))
    sub = g.op("Div", g.op("Mod", fine, split), divisor)
    side = g.op("Gather", g.const(tables.side), coarse)
    slot = g.op(
        "Add",
        g.op("Gather", g.const(tables.base), coarse),
        g.op("Add", g.op("Mul", _column(g, sub, 1), side), _column(g, sub, 0)),
    )
    row = g.op("Cast", g.op("Gather", g.const(tables.row.astype(np.int32)), slot), to=TensorProto.INT64)
    fast = g.op("And", inside, g.op("GreaterOrEqual", row, g.ints(0)))
    return g.op("Where", fast, row, g.ints(0)), fast


def _nearest_by_cell(g: _Graph, x: str, tables: CellTables, points: np.ndarray, k: int) -> tuple[str, str]:
    """[N, k] training indices of the rows whose cell has a candidate list (others: garbage), and [N] which."""
    row, fast = _cells(g, x, tables)
    # indices fit uint16 on the housing data: half the table of int32
    index_type = np.uint16 if points.shape[0] < np.iinfo(np.uint16).max else np.int32
    candidates = g.op("Cast", g.op("Gather", g.const(tables.candidates.astype(index_type)), row), to=TensorProto.INT64)
    total = ""
    for axis in range(points.shape[1]):
        # the padding index points.shape[0] is a point at infinity, never chosen: lists hold >= k points
        coordinates = np.append(points[:, axis], np.inf).astype(np.float64)
        diff = g.op("Sub", g.op("Gather", x, g.ints(axis), axis=1), g.op("Gather", g.const(coordinates), candidates))
        square = g.op("Mul", diff, diff)
        total = g.op("Add", total, square) if total else square
    return g.op("GatherElements", candidates, _top_k(g, total, k), axis=1), fast


def _nearest(g: _Graph, x: str, stage: NeighborTargetFeatures, k: int) -> str:
    """[N, k] training indices, by cell candidates where the tables have them, by brute force elsewhere."""
    points = np.asarray(stage.tree_.data)
    tables = build_tables(points, k)
    if not tables.candidates.shape[0]:
        return _top_k(g, _squared_distances(g, x, points), k)
    nearest, fast = _nearest_by_cell(g, x, tables, points, k)
    # rows off the grid or in a cell over the width cap (none, usually: NonZero is empty then)
    slow = g.op("Transpose", g.op("NonZero", g.op("Not", fast)), perm=[1, 0])
    brute = _top_k(g, _squared_distances(g, g.op("GatherND", x, slow), points), k)
    return g.op("ScatterND", nearest, slow, brute)


def _convert_neighbors(scope: Any, operator: Any, container: Any) -> None:
    stage, g, x, out = _io(scope, operator, container)
    k_max = min(max(stage.n_neighbors), stage.target_.shape[0])
    nearest = _nearest(g, x, stage, k_max)
    targets = g.op("Gather", g.const(np.asarray(stage.target_, dtype=np.float64)), nearest, axis=0)
    means = [
        g.op("ReduceMean", g.op("Slice", targets, g.ints(0), g.ints(min(k, k_max)), g.ints(1)), g.ints(1), keepdims=1)
        for k in stage.n_neighbors
    ]
    g.op("Concat", *means, output=out, axis=1)


def _fill_missing(g: _Graph, x: str, statistics: np.ndarray, out: str | None = None) -> str:
    return g.op("Where", g.op("IsNaN", x), g.const(statistics[None].astype(np.float64)), x, output=out)


def _convert_simple_imputer(scope: Any, operator: Any, container: Any) -> None:
    stage, g, x, out = _io(scope, operator, container)
    if not (isinstance(stage.missing_values, float) and np.isnan(stage.missing_values)) or stage.add_indicator:
        raise NotImplementedError("SimpleImputer other than missing_values=NaN without indicator")
    if np.isnan(stage.statistics_).any():
        raise NotImplementedError("SimpleImputer with a column that was all-missing at fit")
    _fill_missing(g, x, stage.statistics_, out)


def _convert_iterative_imputer(scope: Any, operator: Any, container: Any) -> None:
    """IterativeImputer.transform: initial fill, then each fitted per-column model in order."""
    stage, g, x, out = _io(scope, operator, container)
    if stage.add_indicator or np.any(stage._is_empty_feature):
        raise NotImplementedError("IterativeImputer with add_indicator or a column all-missing at fit")
    missing = g.op("IsNaN", x)
    initial = _fill_missing(g, x, stage.initial_imputer_.statistics_)
    filled = initial
    width = len(stage._is_empty_feature)
    for triplet in stage.imputation_sequence_ if stage.n_iter_ else []:
        if not isinstance(triplet.estimator, TREES):
            raise NotImplementedError(f"IterativeImputer with estimator {type(triplet.estimator).__name__}")
        neighbours = g.op("Gather", filled, g.ints(*triplet.neighbor_feat_idx), axis=1)
        predicted = _tree_ensemble(g, triplet.estimator, neighbours)
        low, high = stage._min_value[triplet.feat_idx], stage._max_value[triplet.feat_idx]
        if np.isfinite(low):
            predicted = g.op("Max", predicted, g.const(np.array([low])))
        if np.isfinite(high):
            predicted = g.op("Min", predicted, g.const(np.array([high])))
        column = np.zeros((1, width), dtype=bool)
        column[0, triplet.feat_idx] = True
        filled = g.op("Where", g.op("And", missing, g.const(column)), predicted, filled)
    # sklearn returns the initial fill alone when every value of the batch is missing
    known = g.op("Cast", g.op("Not", missing), to=TensorProto.INT64)
    none_known = g.op("Equal", g.op("ReduceMax", known, keepdims=0), g.const(np.array(0, dtype=np.int64)))
    g.op("Where", none_known, initial, filled, output=out)


def _tree_attributes(model: Any) -> tuple[dict[str, Any], bool]:
    """ONNX-ML TreeEnsembleRegressor attributes of a fitted regressor, and whether sklearn casts X to float32."""
    attrs = get_default_tree_regressor_attribute_pairs()
    attrs["n_targets"] = 1
    if isinstance(model, HistGradientBoostingRegressor):
        if model.n_trees_per_iteration_ != 1 or model.is_categorical_ is not None:
            raise NotImplementedError("HistGradientBoostingRegressor with categorical features")
        for i, predictors in enumerate(model._predictors):
            add_tree_to_attribute_pairs_hist_gradient_boosting(
                attrs, False, predictors[0], i, 1.0, 0, False, False, dtype=np.float64
            )
        attrs["base_values"] = [float(np.ravel(model._baseline_prediction)[0])]
        return attrs, False
    if getattr(model, "n_outputs_", 1) != 1:
        raise NotImplementedError(f"{type(model).__name__} with several outputs")
    if isinstance(model, GradientBoostingRegressor):
        if not (model.init_ == "zero" or isinstance(model.init_, DummyRegressor)):
            raise NotImplementedError(f"GradientBoostingRegressor with init {type(model.init_).__name__}")
        trees = [stage[0].tree_ for stage in model.estimators_]
        weight = float(model.learning_rate)
        attrs["base_values"] = [0.0 if model.init_ == "zero" else float(np.ravel(model.init_.constant_)[0])]
    elif isinstance(model, RandomForestRegressor | ExtraTreesRegressor):
        trees = [estimator.tree_ for estimator in model.estimators_]
        weight = 1.0 / len(trees)  # sklearn averages the trees
    else:
        trees, weight = [model.tree_], 1.0
    for i, tree in enumerate(trees):
        add_tree_to_attribute_pairs(attrs, False, tree, i, weight, 0, False, False, dtype=np.float64)
    return attrs, True


def _tree_ensemble(g: _Graph, model: Any, source: str, out: str | None = None) -> str:
    """Double thresholds and leaf values; sklearn's own float32 cast of X where it makes one."""
    attrs, casts_to_float32 = _tree_attributes(model)
    for key in ("nodes_values", "target_weights", "base_values", "nodes_hitrates"):
        values = attrs.pop(key, [])
        if len(values):
            attrs[f"{key}_as_tensor"] = numpy_helper.from_array(np.asarray(values, dtype=np.float64))
    if casts_to_float32:
        source = g.op("Cast", g.op("Cast", source, to=TensorProto.FLOAT), to=TensorProto.DOUBLE)
    # ONNX-ML's regressor output is float32 (relative error ~6e-8); thresholds stay double
    scores = g.op("TreeEnsembleRegressor", source, domain="ai.onnx.ml", **attrs)
    return g.op("Cast", scores, output=out, to=TensorProto.DOUBLE)


def _convert_trees(scope: Any, operator: Any, container: Any) -> None:
    model, g, x, out = _io(scope, operator, container)
    _tree_ensemble(g, model, x, out)


CONVERTERS = {
    RatioFeatures: ("HousingRatioFeatures", _convert_ratio),
    ClusterSimilarity: ("HousingClusterSimilarity", _convert_clusters),
    NeighborTargetFeatures: ("HousingNeighborTargetFeatures", _convert_neighbors),
    FunctionTransformer: ("HousingLog1pClipped", _convert_log),
    SimpleImputer: ("HousingSimpleImputer", _convert_simple_imputer),
    IterativeImputer: ("HousingIterativeImputer", _convert_iterative_imputer),
    HistGradientBoostingRegressor: ("HousingHistGradientBoostingRegressor", _convert_trees),
    GradientBoostingRegressor: ("HousingGradientBoostingRegressor", _convert_trees),
    RandomForestRegressor: ("HousingRandomForestRegressor", _convert_trees),
    ExtraTreesRegressor: ("HousingExtraTreesRegressor", _convert_trees),
    DecisionTreeRegressor: ("HousingDecisionTreeRegressor", _convert_trees),
}


def register() -> None:
    """Install the converters above into skl2onnx (replacing its float32 ones for these classes)."""
    for model, (alias, convert) in CONVERTERS.items():
        update_registered_converter(model, alias, _double_shape, convert, overwrite=True)
