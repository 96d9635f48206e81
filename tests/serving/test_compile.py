"""The compiled graph against the sklearn Pipeline it came from, on real data: parity where a
converter exists, one line naming the stage where none does, and a wrong converter caught."""

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import skops.io
from skl2onnx import update_registered_converter
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_limits

from housing_mlops.config.schema import Config
from housing_mlops.data.split import split
from housing_mlops.features.spec import feature_spec_for
from housing_mlops.features.transformers import RatioFeatures
from housing_mlops.modeling.zoo import averaged, estimator_from, make_pipeline
from housing_mlops.serving import converters, parity, variants
from housing_mlops.serving.compile import FEATURES, align_thresholds, compile_pipeline
from housing_mlops.serving.runtime import CompiledModel, feeds

HGB = ("sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 60, "random_state": 0})
FAMILIES = {
    "hist_gradient_boosting": HGB,
    "gradient_boosting": ("sklearn.ensemble.GradientBoostingRegressor", {"n_estimators": 30, "random_state": 0}),
    "random_forest": ("sklearn.ensemble.RandomForestRegressor", {"n_estimators": 10, "random_state": 0}),
    "decision_tree": ("sklearn.tree.DecisionTreeRegressor", {"max_depth": 8, "random_state": 0}),
    "ridge": ("sklearn.linear_model.Ridge", {"alpha": 1.0}),
    "lasso": ("sklearn.linear_model.Lasso", {"alpha": 10.0, "max_iter": 5000}),
}


@pytest.fixture(scope="module")
def frames(full_data: pd.DataFrame, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    sample = full_data.sample(2000, random_state=1)
    return split(sample, cfg.data, cfg.split)


def fitted(cfg: Config, frames: tuple, imputer: str = "iterative", family: str = "hist_gradient_boosting") -> Any:
    train, _ = frames
    spec = feature_spec_for(cfg, {"strategy": imputer, "params": dict(cfg.impute.strategies[imputer])}, 8)
    path, params = FAMILIES[family]
    model = make_pipeline(spec, estimator_from(path, params))
    with threadpool_limits(1):  # two test workers share two cores: OpenMP threads would fight
        return model.fit(train[cfg.data.features()], train[cfg.data.target])


@pytest.fixture(scope="module")
def default_model(cfg: Config, frames: tuple) -> Any:
    """The default shape of the registered model: iterative imputer, HistGradientBoosting."""
    return fitted(cfg, frames)


@pytest.fixture(scope="module")
def default_checked(default_model: Any, cfg: Config, frames: tuple) -> variants.Compiled:
    return checked(default_model, cfg, frames)


def checked(model: Any, cfg: Config, frames: tuple) -> variants.Compiled:
    train, test = frames
    features = cfg.data.features()
    with threadpool_limits(1):
        return variants.compile_checked(model, train[features], test[features], cfg.serving)


@pytest.mark.parametrize("imputer", ["median", "mean", "iterative"])
def test_the_graph_agrees_with_sklearn_for_each_convertible_imputer(
    cfg: Config, frames: tuple, imputer: str, default_checked: variants.Compiled
) -> None:
    outcome = default_checked if imputer == "iterative" else checked(fitted(cfg, frames, imputer=imputer), cfg, frames)
    assert outcome.onnx is not None, outcome.reason
    assert outcome.parity is not None
    assert outcome.parity.passed
    assert outcome.parity.max_rel_error <= cfg.serving.max_rel_error
    # the test set, the odd rows, each odd row alone, each test row alone
    assert outcome.parity.rows == len(frames[1]) + 3 + 3 + len(frames[1])


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_graph_agrees_with_sklearn_for_each_zoo_family(cfg: Config, frames: tuple, family: str) -> None:
    model = fitted(cfg, frames, imputer="median", family=family)
    outcome = checked(model, cfg, frames)
    assert outcome.onnx is not None, outcome.reason
    test = frames[1][cfg.data.features()]
    compiled = CompiledModel(outcome.onnx, 1, 64)  # chunks smaller than the test set: chunking changes nothing
    np.testing.assert_allclose(compiled.predict(test), model.predict(test), rtol=cfg.serving.max_rel_error)


def test_an_average_of_boosted_models_compiles_to_one_graph_with_parity(cfg: Config, frames: tuple) -> None:
    train, test = frames
    spec = feature_spec_for(cfg, {"strategy": "iterative", "params": dict(cfg.impute.strategies["iterative"])}, 8)
    members = [
        (f"trial_{i}", HistGradientBoostingRegressor(max_iter=40, learning_rate=rate, max_leaf_nodes=leaves))
        for i, (rate, leaves) in enumerate([(0.1, 31), (0.2, 15), (0.05, 63)])
    ]
    model = make_pipeline(spec, averaged(members))
    with threadpool_limits(1):
        model.fit(train[cfg.data.features()], train[cfg.data.target])
    outcome = checked(model, cfg, frames)
    assert outcome.onnx is not None, outcome.reason
    assert outcome.parity is not None
    assert outcome.parity.passed
    features = test[cfg.data.features()]
    got = CompiledModel(outcome.onnx, 1, 64).predict(features)
    np.testing.assert_allclose(got, model.predict(features), rtol=cfg.serving.max_rel_error)
    # the mean of three models, not any one of them
    alone = [make_pipeline(spec, m).fit(train[cfg.data.features()], train[cfg.data.target]) for _, m in members]
    assert all(np.abs(got - one.predict(features)).max() > 1.0 for one in alone)


def test_an_average_with_a_model_that_is_not_trees_keeps_sklearn_and_says_why(cfg: Config, frames: tuple) -> None:
    train, _ = frames
    spec = feature_spec_for(cfg, {"strategy": "median", "params": {}}, 8)
    regressor = averaged([("trees", HistGradientBoostingRegressor(max_iter=20)), ("ridge", Ridge())])
    model = make_pipeline(spec, regressor).fit(train[cfg.data.features()], train[cfg.data.target])
    outcome = checked(model, cfg, frames)
    assert outcome.onnx is None
    assert "stage 'model' (VotingRegressor)" in outcome.reason
    assert "an unweighted average of tree models" in outcome.reason


def test_odd_rows_predict_as_sklearn_does(
    cfg: Config, frames: tuple, default_model: Any, default_checked: variants.Compiled
) -> None:
    model, outcome = default_model, default_checked
    assert outcome.onnx is not None
    test = frames[1][cfg.data.features()]
    numeric = cfg.data.features("numeric", "geo")
    odd = parity.odd_rows(test, numeric, cfg.data.features("categorical"))
    assert odd.loc[0, numeric].isna().all()
    assert odd.loc[1, "ocean_proximity"] == parity.UNSEEN
    compiled = CompiledModel(outcome.onnx, 1, 1024)
    for batch in (odd, odd.iloc[[0]], odd.iloc[[2]]):
        got = compiled.predict(batch)
        assert not np.isnan(got).any()
        np.testing.assert_allclose(got, model.predict(batch), rtol=cfg.serving.max_rel_error)


def test_a_stage_without_converter_keeps_sklearn_and_the_reason_names_it(cfg: Config, frames: tuple) -> None:
    outcome = checked(fitted(cfg, frames, imputer="knn"), cfg, frames)
    assert outcome.onnx is None
    assert outcome.parity is None
    assert "stage 'impute.numeric' (ScaledKNNImputer) has no ONNX converter" in outcome.reason
    assert "\n" not in outcome.reason


def test_a_zoo_family_without_converter_keeps_sklearn_and_the_reason_names_it(cfg: Config, frames: tuple) -> None:
    train, _ = frames
    spec = feature_spec_for(cfg, {"strategy": "median", "params": {}}, 8)
    model = make_pipeline(spec, estimator_from("sklearn.kernel_ridge.KernelRidge", {"alpha": 1.0}))
    model.fit(train[cfg.data.features()], train[cfg.data.target])
    outcome = checked(model, cfg, frames)
    assert outcome.onnx is None
    assert "stage 'model' (KernelRidge) has no ONNX converter" in outcome.reason


class SkewedRatios(RatioFeatures):
    """RatioFeatures whose converter is wrong on purpose: every ratio 1 % too large in the graph."""


def _skewed_converter(scope: Any, operator: Any, container: Any) -> None:
    stage, graph, x, out = converters._io(scope, operator, container)
    numerators = graph.op("Gather", x, graph.ints(*[n for n, _ in stage.pairs_]), axis=1)
    denominators = graph.op("Gather", x, graph.ints(*[d for _, d in stage.pairs_]), axis=1)
    graph.op("Mul", graph.op("Div", numerators, denominators), graph.const(np.array([1.01])), output=out)


def test_a_wrong_converter_fails_parity_and_sklearn_is_served(cfg: Config, frames: tuple, default_model: Any) -> None:
    update_registered_converter(SkewedRatios, "TestSkewedRatios", converters._double_shape, _skewed_converter)
    model = copy.deepcopy(default_model)
    ratio = model.named_steps["features"].named_transformers_["ratio"]
    skewed = SkewedRatios(ratio[0].ratios)
    skewed.__dict__.update(ratio[0].__dict__)
    ratio.steps[0] = (ratio.steps[0][0], skewed)
    outcome = checked(model, cfg, frames)
    assert outcome.onnx is None
    assert outcome.parity is not None
    assert not outcome.parity.passed
    assert outcome.reason.startswith("parity failed: max relative error ")
    assert "> serving.max_rel_error 0.0001 on the test set" in outcome.reason


def test_compile_false_serves_sklearn(cfg: Config, frames: tuple, default_model: Any) -> None:
    off = dataclasses.replace(cfg.serving, compile=False)
    train, test = frames
    outcome = variants.compile_checked(default_model, train, test, off)
    assert (outcome.onnx, outcome.reason) == (None, "serving.compile is false")


def test_thresholds_are_aligned_only_where_training_rows_sit_on_them(
    cfg: Config, frames: tuple, default_model: Any
) -> None:
    model = default_model
    train = frames[0][cfg.data.features()]
    aligned = compile_pipeline(model, cfg.serving.opset, train)
    plain = compile_pipeline(model, cfg.serving.opset)
    test = frames[1][cfg.data.features()]
    want = model.predict(test)
    errors = {}
    for name, graph in (("aligned", aligned), ("plain", plain)):
        got = CompiledModel(graph.SerializeToString(), 1, 1024).predict(test)
        errors[name] = float(np.max(np.abs(got - want) / np.abs(want)))
    assert errors["aligned"] <= cfg.serving.max_rel_error
    assert errors["aligned"] <= errors["plain"]


def test_the_trees_get_the_same_features_from_the_graph_as_from_sklearn_bit_for_bit(
    cfg: Config, frames: tuple, default_model: Any
) -> None:
    """Exact, batched and row by row: a value an ulp off could cross a threshold training rows
    hold (a full-data model's test row did: 1 ulp above, right in sklearn, left in the graph)."""
    graph = compile_pipeline(default_model, cfg.serving.opset)
    width = len(default_model[:-1].get_feature_names_out())
    graph.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.DOUBLE, [None, width]))
    runtime = CompiledModel(graph.SerializeToString(), 1, 1024)
    test = frames[1][cfg.data.features()]
    want = default_model[:-1].transform(test).to_numpy(np.float64)
    batched = runtime.session.run([FEATURES], feeds(test, runtime.layout))[0]
    alone = np.vstack(
        [runtime.session.run([FEATURES], feeds(test.iloc[[i]], runtime.layout))[0] for i in range(len(test))]
    )
    np.testing.assert_array_equal(batched, want)
    np.testing.assert_array_equal(alone, want)


def test_a_runtime_that_answers_a_row_alone_differently_fails_parity(
    cfg: Config, frames: tuple, default_model: Any
) -> None:
    test = frames[1][cfg.data.features()].head(50)

    def batch_dependent(frame: pd.DataFrame) -> np.ndarray:  # right in a batch, 0.1 % off alone
        got = default_model.predict(frame)
        return got * 1.001 if len(frame) == 1 else got

    batches = {"the test set": test, "each test row alone": test}
    loose = parity.check(default_model.predict, batch_dependent, batches, cfg.serving.max_rel_error)
    assert loose.passed  # scored as batches, nothing is wrong
    strict = parity.check(
        default_model.predict, batch_dependent, batches, cfg.serving.max_rel_error, alone=("each test row alone",)
    )
    assert not strict.passed
    assert strict.reason.startswith("max relative error 0.001 > serving.max_rel_error 0.0001 on each test row alone")


def test_an_aligned_threshold_keeps_headroom_within_the_graphs_own_error() -> None:
    """A threshold training rows hold, an unseen value ~100 ulps above it (sklearn rounded apart a
    value mathematically equal to it): it goes right in sklearn, and must in the aligned model."""
    t = 0.6821121506270363  # the registered model's threshold on geo__cluster_0_similarity
    x = np.repeat([0.5, t, 0.9], 40).reshape(-1, 1)
    y = (x[:, 0] > t).astype(np.float64)
    # max_bins=2 over three values: the one bin threshold is the median, t itself, held by 40 rows
    model = HistGradientBoostingRegressor(max_bins=2, max_iter=1, learning_rate=1.0, min_samples_leaf=1)
    model.fit(x, y)
    assert model._predictors[0][0].nodes["num_threshold"][0] == t
    above = np.array([[t + 135 * np.spacing(t)]])  # row 524 of the full-data test set
    exact = align_thresholds(model, x, x.copy())  # a graph that computes this feature exactly
    assert exact.predict(above) == model.predict(above) == model.predict([[0.9]])
    # where the graph is ~1,000 ulps off on this feature, the headroom grows with it: a row alone
    # may compute a little further up than any row of the reference batch and still go left
    off = x * (1 + 1000 * np.finfo(np.float64).eps)
    loose = align_thresholds(model, x, off)
    assert loose.predict([[t * (1 + 1500 * np.finfo(np.float64).eps)]]) == model.predict([[t]])


def test_both_variants_are_profiled_at_one_thread_and_only_the_served_one_at_more(
    default_model: Any, default_checked: variants.Compiled, frames: tuple, cfg: Config, tmp_path: Path
) -> None:
    _, test = frames
    settings = dataclasses.replace(cfg.deployment.profile, repeats=1, calls=5, warmup=1, batch_sizes=[1, 20])
    profiles, served, skops_types = variants.profile_variants(
        default_model, default_checked, test[cfg.data.features()], [1, 2], tmp_path, settings, cfg.serving.chunk_rows
    )
    assert served == variants.fastest(profiles)
    assert set(profiles) == {variants.SKLEARN, variants.ONNX}
    assert list(profiles[served]["threads"]) == ["1", "2"]
    (other,) = set(profiles) - {served}
    assert list(profiles[other]["threads"]) == ["1"]
    # the served variant was chosen on the figure it still shows
    assert profiles[served]["cpu_p95_ms"] <= profiles[other]["cpu_p95_ms"]
    # the types its loader trusted are exactly those of the Pipeline's own skops file
    assert skops_types == skops.io.get_untrusted_types(data=skops.io.dumps(default_model))
