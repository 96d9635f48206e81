"""The one-sort absolute-error leaf values against sklearn's own, with real HistGradientBoosting fits."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting import gradient_boosting

from housing_mlops.modeling import leaf_values
from housing_mlops.modeling.evaluation import cross_validate
from housing_mlops.modeling.fidelity import _grow


def data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features and a skewed target with ties (rounded), so leaves hold equal residuals."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 6))
    y = np.round(np.exp(X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + rng.normal(scale=0.3, size=rows)) * 10)
    return X, y


def fitted(
    update: object, X: np.ndarray, y: np.ndarray, monkeypatch: pytest.MonkeyPatch, **params: object
) -> HistGradientBoostingRegressor:
    """A HistGradientBoostingRegressor fitted with `update` as sklearn's leaf-value function."""
    monkeypatch.setattr(gradient_boosting, "_update_leaves_values", update)
    weights = params.pop("sample_weight", None)
    model = HistGradientBoostingRegressor(loss=params.pop("loss", "absolute_error"), random_state=0, **params)
    return model.fit(X, y, sample_weight=weights)


def same_trees(a: HistGradientBoostingRegressor, b: HistGradientBoostingRegressor) -> bool:
    """Every node of every tree equal, byte for byte (structure, thresholds and leaf values)."""
    pairs = [(p, q) for pa, qa in zip(a._predictors, b._predictors, strict=True) for p, q in zip(pa, qa, strict=True)]
    return len(pairs) > 0 and all(p.nodes.tobytes() == q.nodes.tobytes() for p, q in pairs)


@pytest.mark.parametrize(
    ("rows", "params"),
    [
        (2_000, {"max_iter": 30, "max_leaf_nodes": 31, "min_samples_leaf": 20}),
        (2_001, {"max_iter": 30, "max_leaf_nodes": 63, "min_samples_leaf": 1}),  # leaves of 1, 2, 3 ... rows
        (501, {"max_iter": 20, "max_leaf_nodes": 7, "min_samples_leaf": 50, "learning_rate": 0.3}),
    ],
)
def test_the_same_trees_bit_for_bit_as_sklearn(
    rows: int, params: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = data(rows)
    ours = fitted(leaf_values.update_leaves_values, X, y, monkeypatch, **params)
    theirs = fitted(leaf_values.SKLEARN_UPDATE, X, y, monkeypatch, **params)
    assert same_trees(ours, theirs)
    assert np.array_equal(ours.predict(X), theirs.predict(X))
    # the leaves have both parities, so both branches of the median were compared
    leaves = np.concatenate([tree.nodes["count"][tree.nodes["is_leaf"] == 1] for [tree] in ours._predictors])
    assert set(leaves % 2) == {0, 1}


def test_absolute_error_without_weights_never_calls_sklearns_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("sklearn's per-leaf loop was called")

    monkeypatch.setattr(leaf_values, "SKLEARN_UPDATE", refuse)
    X, y = data(1_000)
    fitted(leaf_values.update_leaves_values, X, y, monkeypatch, max_iter=5)


@pytest.mark.parametrize("params", [{"sample_weight": "weights"}, {"loss": "quantile", "quantile": 0.8}])
def test_weights_and_other_losses_go_to_sklearn_unchanged(
    params: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = data(1_500)
    if params.get("sample_weight") == "weights":
        params = {"sample_weight": np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))}
    calls: list[int] = []
    sklearn_update = leaf_values.SKLEARN_UPDATE

    def counted(*args: object) -> None:
        calls.append(1)
        sklearn_update(*args)

    monkeypatch.setattr(leaf_values, "SKLEARN_UPDATE", counted)
    ours = fitted(leaf_values.update_leaves_values, X, y, monkeypatch, max_iter=10, **params)
    theirs = fitted(sklearn_update, X, y, monkeypatch, max_iter=10, **params)
    assert len(calls) == 10  # one per tree
    assert same_trees(ours, theirs)


def test_install_replaces_sklearns_function_and_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gradient_boosting, "_update_leaves_values", leaf_values.SKLEARN_UPDATE)
    leaf_values.install()
    leaf_values.install()
    assert gradient_boosting._update_leaves_values is leaf_values.update_leaves_values


def test_the_cv_fits_and_the_sweeps_rungs_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = data(300)
    frame, target = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)]), pd.Series(y)
    model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=3)
    monkeypatch.setattr(gradient_boosting, "_update_leaves_values", leaf_values.SKLEARN_UPDATE)
    cross_validate(model, frame, target, n_folds=2, seed=0)  # one job: the fits run in this process
    assert gradient_boosting._update_leaves_values is leaf_values.update_leaves_values
    monkeypatch.setattr(gradient_boosting, "_update_leaves_values", leaf_values.SKLEARN_UPDATE)
    _grow(model.set_params(warm_start=True), "max_iter", 2, (frame, y, frame, y))
    assert gradient_boosting._update_leaves_values is leaf_values.update_leaves_values
