"""The imputation contest: the imputers, their config errors, and a deterministic, target-free
masked-reconstruction score."""

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (unlocks IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.utils.estimator_checks import parametrize_with_checks

from housing_mlops.errors import ConfigError, HousingError, SchemaError
from housing_mlops.features.imputation import (
    SCORE_COLUMNS,
    RoundsImputer,
    ScaledKNNImputer,
    imputer_inputs,
    make_imputer,
    pick_winner,
    score_strategies,
)

TARGET = "median_house_value"
# Same names as config impute.strategies, with a cheaper forest to keep the tests fast.
FAST = {
    "median": {},
    "mean": {},
    "knn": {"n_neighbors": 5},
    "iterative": {"max_iter": 2, "n_estimators": 5, "max_depth": 6},
}


@pytest.fixture(scope="module")
def numeric(full_data: pd.DataFrame, cfg) -> pd.DataFrame:
    """2,000 real rows of the imputer's inputs (about 20 missing total_bedrooms)."""
    return imputer_inputs(full_data.sample(2000, random_state=0), cfg.data)


@parametrize_with_checks([ScaledKNNImputer(n_neighbors=5), ScaledKNNImputer(n_neighbors=1)])
def test_scaled_knn_imputer_follows_the_sklearn_contract(estimator: Any, check: Any) -> None:
    check(estimator)


def test_scaled_knn_finds_neighbours_in_standardised_units() -> None:
    rng = np.random.default_rng(0)
    signal = rng.uniform(0, 1, 2000)
    X = np.column_stack([signal, rng.uniform(0, 10_000, 2000), signal])  # wide noise column
    holes = X.copy()
    hidden = rng.choice(2000, 100, replace=False)
    holes[hidden, 2] = np.nan
    scaled = ScaledKNNImputer(n_neighbors=5).fit(holes).transform(holes)
    raw = KNNImputer(n_neighbors=5).fit(holes).transform(holes)

    def rmse(filled: np.ndarray) -> float:
        return float(np.sqrt(np.mean((filled[hidden, 2] - X[hidden, 2]) ** 2)))

    assert rmse(scaled) < rmse(raw) / 3  # raw distances see only the noise column
    known = ~np.isnan(holes)
    np.testing.assert_array_equal(scaled[known], holes[known])  # known values untouched


def test_scaled_knn_rejects_a_column_with_no_known_value() -> None:
    X = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] have no known value"):
        ScaledKNNImputer(n_neighbors=5).fit(X)


# A fresh process, as a step or a worker is: pytest swaps the warning filters around collection,
# so a filter that importing the module installs does not survive into a test of this process.
ROUNDS_FIT = """
import threading
import numpy as np
from sklearn.ensemble import RandomForestRegressor
from housing_mlops.features.imputation import RoundsImputer

X = np.random.default_rng(0).normal(size=(400, 4))
X[::7, 0] = np.nan
def fit():
    forest = RandomForestRegressor(n_estimators=5, random_state=0)
    RoundsImputer(estimator=forest, max_iter=1, skip_complete=True, random_state=0).fit_transform(X)
threads = [threading.Thread(target=fit) for _ in range(4)]  # as select fits folds: on threads
[t.start() for t in threads]
[t.join() for t in threads]
fit()
"""


def test_rounds_imputer_fits_silently_on_threads_and_imputes_as_iterative_imputer(numeric) -> None:
    done = subprocess.run([sys.executable, "-c", ROUNDS_FIT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    params = {"estimator": RandomForestRegressor(n_estimators=5, max_depth=6, random_state=0), "random_state": 0}
    with pytest.warns(ConvergenceWarning, match="Early stopping criterion not reached"):
        expected = IterativeImputer(max_iter=1, skip_complete=True, **params).fit_transform(numeric)
    rounds = RoundsImputer(max_iter=1, skip_complete=True, **params)
    np.testing.assert_array_equal(rounds.fit(numeric).transform(numeric), expected)
    assert rounds.n_iter_ == 1


def test_make_imputer_builds_each_strategy_from_its_params() -> None:
    assert make_imputer({"strategy": "median"}, seed=0).strategy == "median"
    assert isinstance(make_imputer({"strategy": "mean", "params": {}}, seed=0), SimpleImputer)
    assert make_imputer({"strategy": "knn", "params": {"n_neighbors": 3}}, seed=0).n_neighbors == 3
    params = {"max_iter": 2, "n_estimators": 7, "max_depth": None}
    iterative = make_imputer({"strategy": "iterative", "params": params}, seed=3)
    assert isinstance(iterative, IterativeImputer)
    assert isinstance(iterative.estimator, RandomForestRegressor)
    assert (iterative.max_iter, iterative.random_state) == (2, 3)
    assert (iterative.estimator.n_estimators, iterative.estimator.max_depth) == (7, None)
    assert iterative.estimator.random_state == 3


def test_make_imputer_builds_the_configured_strategies_as_configured(cfg) -> None:
    knn = make_imputer({"strategy": "knn", "params": cfg.impute.strategies["knn"]}, seed=cfg.impute.seed)
    assert knn.n_neighbors == cfg.impute.strategies["knn"]["n_neighbors"]
    given = cfg.impute.strategies["iterative"]
    iterative = make_imputer({"strategy": "iterative", "params": given}, seed=cfg.impute.seed)
    built = {"max_iter": iterative.max_iter, **iterative.estimator.get_params()}
    assert {k: built[k] for k in given} == given
    assert iterative.random_state == iterative.estimator.random_state == cfg.impute.seed


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"strategy": "zero"}, r"impute\.strategy' = 'zero'.*median \| mean \| knn \| iterative"),
        ({"params": {}}, r"impute\.strategy' = None"),
        ({"strategy": "median", "params": {"k": 3}}, r"impute\.params\.k' .*strategy 'median'"),
        ({"strategy": "knn", "params": {"n_neighbors": 0}}, r"impute\.params\.n_neighbors' = 0"),
        ({"strategy": "iterative", "params": {"max_iter": 1.5}}, r"impute\.params\.max_iter'"),
        ({"strategy": "knn", "k": 3}, r"impute\.k'"),
        # no defaults in code: every param of the strategy is given (config impute.strategies)
        ({"strategy": "knn"}, r"impute\.params\.n_neighbors' is missing .*impute\.strategies\.knn"),
        (
            {"strategy": "iterative", "params": {"max_iter": 1, "max_depth": 3}},
            r"impute\.params\.n_estimators' is missing",
        ),
        ({"strategy": "iterative", "params": {"random_state": 0}}, r"impute\.params\.random_state' .*not allowed"),
    ],
)
def test_bad_imputer_config_names_the_key(spec: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        make_imputer(spec, seed=0)
    assert "\n" not in str(info.value)


def test_imputer_inputs_are_numeric_features_never_the_target(full_data, cfg) -> None:
    columns = list(imputer_inputs(full_data, cfg.data).columns)
    assert columns == cfg.data.features("numeric", "geo")
    assert TARGET not in columns
    assert "ocean_proximity" not in columns
    with pytest.raises(SchemaError, match=r"\['latitude'\]"):
        imputer_inputs(full_data.drop(columns="latitude"), cfg.data)


def test_score_strategies_is_deterministic_and_ranks_sensibly(numeric: pd.DataFrame) -> None:
    scores = score_strategies(numeric, FAST, n_folds=2, mask_fraction=0.1, seed=0)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert list(scores["strategy"]) == list(FAST)
    assert set(scores["column"]) == {"total_bedrooms"}  # the only column with missing values
    again = score_strategies(numeric, FAST, n_folds=2, mask_fraction=0.1, seed=0)
    pd.testing.assert_frame_equal(scores.drop(columns="seconds"), again.drop(columns="seconds"))
    other = score_strategies(numeric, FAST, n_folds=2, mask_fraction=0.1, seed=1)
    assert not np.allclose(other["rmse_mean"], scores["rmse_mean"])
    rmse = scores.set_index("strategy")["rmse_mean"]
    # total_bedrooms follows households closely: neighbours beat a constant by far.
    assert rmse["knn"] < rmse["median"] / 2
    assert rmse["iterative"] < rmse["median"] / 2
    assert (scores["seconds"] > 0).all()


def test_score_strategies_hides_known_values_of_gappy_columns_only(
    numeric: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[pd.DataFrame] = []
    fit = SimpleImputer.fit

    def recording_fit(self: SimpleImputer, X: pd.DataFrame, y: Any = None) -> SimpleImputer:
        seen.append(X.copy())
        return fit(self, X, y)

    monkeypatch.setattr(SimpleImputer, "fit", recording_fit)
    score_strategies(numeric, {"median": {}}, n_folds=3, mask_fraction=0.1, seed=0)
    assert len(seen) == 3
    missing, known = numeric["total_bedrooms"].isna(), numeric["total_bedrooms"].notna().sum()
    for frame in seen:
        assert list(frame.columns) == list(numeric.columns)  # what the caller gave: no target
        assert frame.isna().sum().drop("total_bedrooms").eq(0).all()
        assert frame["total_bedrooms"].isna().sum() == missing.sum() + round(0.1 * known)
        assert frame["total_bedrooms"][missing].isna().all()
    assert not seen[0].isna().equals(seen[1].isna())  # each fold its own mask


def test_score_strategies_refuses_non_numeric_columns(full_data, numeric) -> None:
    frame = numeric.join(full_data["ocean_proximity"])
    with pytest.raises(SchemaError, match=r"\['ocean_proximity'\] are not numeric.*target"):
        score_strategies(frame, FAST, n_folds=1, mask_fraction=0.1, seed=0)


def test_score_strategies_rejects_an_unknown_strategy_before_any_work(numeric) -> None:
    with pytest.raises(ConfigError, match=r"impute\.strategies\.zero"):
        score_strategies(numeric, {"zero": {}}, n_folds=1, mask_fraction=0.1, seed=0)


def test_nothing_missing_gives_no_scores(numeric: pd.DataFrame) -> None:
    scores = score_strategies(numeric.dropna(), FAST, n_folds=1, mask_fraction=0.1, seed=0)
    assert scores.empty
    assert list(scores.columns) == list(SCORE_COLUMNS)
    with pytest.raises(HousingError, match="no scores"):
        pick_winner(scores)


def _scores(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["strategy", "column", "rmse_mean"])
    return frame.assign(rmse_std=0.0, seconds=1.0)


def test_pick_winner_takes_lowest_mean_rmse_over_columns() -> None:
    scores = _scores([("median", "a", 1.0), ("median", "b", 9.0), ("knn", "a", 2.0), ("knn", "b", 4.0)])
    assert pick_winner(scores) == "knn"  # worse on a, better on average


@pytest.mark.parametrize(
    ("tied", "winner"),
    [
        (["iterative", "knn"], "knn"),
        (["iterative", "mean", "median"], "median"),
        (["knn", "mean"], "mean"),
    ],
)
def test_pick_winner_breaks_ties_towards_the_simpler_strategy(tied, winner) -> None:
    scores = _scores([(name, "a", 5.0) for name in tied] + [("other", "a", 6.0)])
    assert pick_winner(scores) == winner
