"""skl2onnx converters for the project's own stages, and tree ensembles in double precision.

Every converter computes in float64, as the sklearn stage does, so that a value next to a tree's
split threshold takes the same branch in both runtimes. skl2onnx's own tree converters round
thresholds to float32 attributes, and ONNX-ML's TreeEnsembleRegressor answers in float32; the
ones here write ONNX-ML opset 5's TreeEnsemble, float64 thresholds, leaves and output.
`register()` installs them through skl2onnx's documented extension point
(`update_registered_converter`); it is idempotent.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from onnx import TensorProto, numpy_helper
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
    VotingRegressor,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (unlocks IterativeImputer)
from sklearn.impute import IterativeImputer, SimpleImputer
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeRegressor

from housing_mlops.features.imputation import RoundsImputer
from housing_mlops.features.preprocessing import _log1p_clipped
from housing_mlops.features.transformers import ClusterSimilarity, NeighborTargetFeatures, RatioFeatures
from housing_mlops.serving.neighbors import CellTables, build_tables

_SUM, _AVERAGE = 1, 0  # TreeEnsemble aggregate_function values

ML_OPSET = 5  # ai.onnx.ml: TreeEnsemble (float64 in and out) is opset 5

TREES = (
    HistGradientBoostingRegressor,
    GradientBoostingRegressor,
    RandomForestRegressor,
    ExtraTreesRegressor,
    DecisionTreeRegressor,
)


def tree_model(model: Any) -> bool:
    """A tree model, or an average of tree models (all trees: their thresholds can be aligned)."""
    if isinstance(model, VotingRegressor):
        return all(isinstance(member, TREES) for member in model.estimators_)
    return isinstance(model, TREES)


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
            # skl2onnx refuses ai.onnx.ml above 3: declared as 3 here; the assembled model imports 5
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
    if isinstance(stage, (*TREES, VotingRegressor)):
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


@dataclass(frozen=True)
class _Tree:
    """One fitted tree as flat arrays, node 0 its root."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray  # leaf values (interior entries unused), already weighted


def _sklearn_tree(tree: Any, weight: float) -> _Tree:
    nodes = tree.__getstate__()["nodes"]
    return _Tree(
        nodes["left_child"],
        nodes["right_child"],
        nodes["feature"],
        nodes["threshold"],
        nodes["missing_go_to_left"].astype(bool),
        nodes["left_child"] < 0,
        np.asarray(tree.value, dtype=np.float64).reshape(len(nodes), -1)[:, 0] * weight,
    )


def _hist_tree(predictor: Any) -> _Tree:
    nodes = predictor.nodes
    return _Tree(
        nodes["left"],
        nodes["right"],
        nodes["feature_idx"],
        nodes["num_threshold"],
        nodes["missing_go_to_left"].astype(bool),
        nodes["is_leaf"].astype(bool),
        nodes["value"].astype(np.float64),
    )


def _trees(model: Any) -> tuple[list[_Tree], int, float, bool]:
    """(trees, ONNX aggregate function, base value, whether sklearn casts X to float32) of a regressor."""
    if getattr(model, "n_outputs_", 1) != 1:
        raise NotImplementedError(f"{type(model).__name__} with several outputs")
    if isinstance(model, HistGradientBoostingRegressor):
        if model.n_trees_per_iteration_ != 1 or model.is_categorical_ is not None:
            raise NotImplementedError("HistGradientBoostingRegressor with categorical features")
        trees = [_hist_tree(predictors[0]) for predictors in model._predictors]
        return trees, _SUM, float(np.ravel(model._baseline_prediction)[0]), False
    if isinstance(model, GradientBoostingRegressor):
        if not (model.init_ == "zero" or isinstance(model.init_, DummyRegressor)):
            raise NotImplementedError(f"GradientBoostingRegressor with init {type(model.init_).__name__}")
        base = 0.0 if model.init_ == "zero" else float(np.ravel(model.init_.constant_)[0])
        # sklearn adds learning_rate * leaf value per stage: the same products, summed in order
        trees = [_sklearn_tree(stage[0].tree_, float(model.learning_rate)) for stage in model.estimators_]
        return trees, _SUM, base, True
    if isinstance(model, RandomForestRegressor | ExtraTreesRegressor):
        # sklearn sums the trees' predictions in order, then divides by their count
        return [_sklearn_tree(e.tree_, 1.0) for e in model.estimators_], _AVERAGE, 0.0, True
    return [_sklearn_tree(model.tree_, 1.0)], _SUM, 0.0, True


def _tree_ensemble_attributes(trees: list[_Tree], aggregate: int) -> dict[str, Any]:
    """ONNX-ML TreeEnsemble (opset 5) attributes: interior nodes and leaves in separate lists, float64."""
    nodes: dict[str, list[Any]] = {
        k: [] for k in ("feature", "split", "missing", "true", "true_leaf", "false", "false_leaf")
    }
    leaves: list[float] = []
    roots = []
    for tree in trees:
        interior = np.flatnonzero(~tree.is_leaf)
        leaf = np.flatnonzero(tree.is_leaf)
        position = np.full(len(tree.is_leaf), -1)
        position[interior] = len(nodes["feature"]) + np.arange(len(interior))
        position[leaf] = len(leaves) + np.arange(len(leaf))
        leaves.extend(tree.value[leaf].tolist())
        if not len(interior):  # a tree that is one leaf: one entry whose branches both end in it
            roots.append(len(nodes["feature"]))
            for key, value in (("feature", 0), ("split", 0.0), ("missing", 0)):
                nodes[key].append(value)
            for key in ("true", "false"):
                nodes[key].append(int(position[0]))
                nodes[f"{key}_leaf"].append(1)
            continue
        roots.append(int(position[0]))
        for i in interior:
            nodes["feature"].append(int(tree.feature[i]))
            nodes["split"].append(float(tree.threshold[i]))
            nodes["missing"].append(int(tree.missing_left[i]))  # true branch = left (x <= split)
            for key, child in (("true", tree.left[i]), ("false", tree.right[i])):
                nodes[key].append(int(position[child]))
                nodes[f"{key}_leaf"].append(int(tree.is_leaf[child]))
    return {
        "aggregate_function": aggregate,
        "post_transform": 0,
        "n_targets": 1,
        "tree_roots": roots,
        "nodes_featureids": nodes["feature"],
        "nodes_splits": numpy_helper.from_array(np.asarray(nodes["split"], dtype=np.float64)),
        "nodes_modes": numpy_helper.from_array(np.zeros(len(nodes["feature"]), dtype=np.uint8)),  # BRANCH_LEQ
        "nodes_missing_value_tracks_true": nodes["missing"],
        "nodes_truenodeids": nodes["true"],
        "nodes_trueleafs": nodes["true_leaf"],
        "nodes_falsenodeids": nodes["false"],
        "nodes_falseleafs": nodes["false_leaf"],
        "leaf_targetids": [0] * len(leaves),
        "leaf_weights": numpy_helper.from_array(np.asarray(leaves, dtype=np.float64)),
    }


def _tree_ensemble(g: _Graph, model: Any, source: str, out: str | None = None) -> str:
    """The regressor as one float64 TreeEnsemble; sklearn's own float32 cast of X where it makes one."""
    trees, aggregate, base, casts_to_float32 = _trees(model)
    if casts_to_float32:
        source = g.op("Cast", g.op("Cast", source, to=TensorProto.FLOAT), to=TensorProto.DOUBLE)
    scores = g.op("TreeEnsemble", source, domain="ai.onnx.ml", **_tree_ensemble_attributes(trees, aggregate))
    return g.op("Add", scores, g.const(np.array([base])), output=out)


def _convert_trees(scope: Any, operator: Any, container: Any) -> None:
    model, g, x, out = _io(scope, operator, container)
    _tree_ensemble(g, model, x, out)


def _convert_average(scope: Any, operator: Any, container: Any) -> None:
    """VotingRegressor of tree models: each member's ensemble, then their mean (ORT has no float64 Mean)."""
    model, g, x, out = _io(scope, operator, container)
    if not tree_model(model) or model.weights is not None:
        raise NotImplementedError("VotingRegressor other than an unweighted average of tree models")
    predictions = [_tree_ensemble(g, member, x) for member in model.estimators_]
    total = predictions[0]
    for prediction in predictions[1:]:  # in order, as numpy's mean over the members adds them
        total = g.op("Add", total, prediction)
    g.op("Div", total, g.const(np.array([float(len(predictions))])), output=out)


CONVERTERS = {
    RatioFeatures: ("HousingRatioFeatures", _convert_ratio),
    ClusterSimilarity: ("HousingClusterSimilarity", _convert_clusters),
    NeighborTargetFeatures: ("HousingNeighborTargetFeatures", _convert_neighbors),
    FunctionTransformer: ("HousingLog1pClipped", _convert_log),
    SimpleImputer: ("HousingSimpleImputer", _convert_simple_imputer),
    IterativeImputer: ("HousingIterativeImputer", _convert_iterative_imputer),
    RoundsImputer: ("HousingRoundsImputer", _convert_iterative_imputer),
    HistGradientBoostingRegressor: ("HousingHistGradientBoostingRegressor", _convert_trees),
    GradientBoostingRegressor: ("HousingGradientBoostingRegressor", _convert_trees),
    RandomForestRegressor: ("HousingRandomForestRegressor", _convert_trees),
    ExtraTreesRegressor: ("HousingExtraTreesRegressor", _convert_trees),
    DecisionTreeRegressor: ("HousingDecisionTreeRegressor", _convert_trees),
    VotingRegressor: ("HousingVotingRegressor", _convert_average),
}


def register() -> None:
    """Install the converters above into skl2onnx (replacing its float32 ones for these classes)."""
    for model, (alias, convert) in CONVERTERS.items():
        update_registered_converter(model, alias, _double_shape, convert, overwrite=True)
