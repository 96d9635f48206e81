"""Feature transformers and the preprocessor: the sklearn contract, per-fold fitting, no target
leakage, and identical features for a row alone, in a batch or with an unseen category."""

import dataclasses
import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from housing_mlops.config.data import ColumnConfig
from housing_mlops.errors import ConfigError
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec, feature_spec_from_config
from housing_mlops.features.transformers import ClusterSimilarity, NeighborTargetFeatures, RatioFeatures

TARGET = "median_house_value"
INPUTS = [
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
    "longitude",
    "latitude",
]
CATEGORIES = ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"]
# The two FeatureSpec fields no config key holds: the impute step's winner and the features step's K.
MEDIAN = {"strategy": "median", "params": {}}
CHOSEN = {"imputer": MEDIAN, "n_clusters": 4}


def clusters(n_clusters: int, weighted_by_target: bool = False) -> ClusterSimilarity:
    """A seeded ClusterSimilarity; the transformer itself has no defaults (they live in config/)."""
    return ClusterSimilarity(n_clusters, gamma=1.0, weighted_by_target=weighted_by_target, n_init=1, random_state=0)


@pytest.fixture(scope="module")
def sample(full_data: pd.DataFrame) -> pd.DataFrame:
    """1,000 real rows, keeping some of the real missing total_bedrooms."""
    return full_data.sample(1000, random_state=1)


@pytest.fixture(scope="module")
def xy(sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return sample.drop(columns=TARGET), sample[TARGET]


@pytest.fixture
def spec(cfg) -> FeatureSpec:
    return feature_spec_from_config(cfg, **CHOSEN)


@parametrize_with_checks(
    [
        RatioFeatures([{"name": "x0_per_x1", "numerator": 0, "denominator": 1}]),
        clusters(3),
        clusters(3, weighted_by_target=True),
        NeighborTargetFeatures((1, 3)),
    ],
)
def test_transformers_follow_the_sklearn_contract(estimator: Any, check: Any) -> None:
    check(estimator)


class IndexRecorder(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """A median imputer that remembers the rows and columns it was fitted on."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> "IndexRecorder":
        self.index_, self.columns_ = list(X.index), list(X.columns)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.imputer_ = SimpleImputer(strategy="median").fit(X)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.imputer_.transform(X)


class TargetRecorder(ClusterSimilarity):
    """ClusterSimilarity that remembers which target rows fit received."""

    def fit(self, X: Any, y: Any = None) -> "TargetRecorder":
        self.y_index_ = list(y.index)
        return super().fit(X, y)


class NeighborTargetRecorder(NeighborTargetFeatures):
    """NeighborTargetFeatures that remembers which target rows fit received."""

    def fit(self, X: Any, y: Any = None) -> "NeighborTargetRecorder":
        self.y_index_ = list(y.index)
        return super().fit(X, y)


def test_preprocessing_is_fitted_on_the_training_fold_only(spec, xy) -> None:
    X, y = xy
    pre = build_preprocessor(spec).set_params(
        impute__numeric=IndexRecorder(),
        features__geo=TargetRecorder(3, gamma=1.0, weighted_by_target=True, n_init=1, random_state=0),
        features__neighbors=NeighborTargetRecorder((1, 5)),
    )
    model = Pipeline([("preprocess", pre), ("model", Ridge())])
    result = cross_validate(
        model,
        X,
        y,
        cv=KFold(3, shuffle=True, random_state=0),
        return_estimator=True,
        return_indices=True,
    )
    for fitted, train, test in zip(
        result["estimator"], result["indices"]["train"], result["indices"]["test"], strict=True
    ):
        fitted_pre = fitted["preprocess"]
        imputer = fitted_pre["impute"].named_transformers_["numeric"]
        clusters = fitted_pre["features"].named_transformers_["geo"]
        assert imputer.index_ == list(X.index[train])
        assert clusters.y_index_ == list(X.index[train])  # KMeans weights: training fold's y
        assert fitted_pre["features"].named_transformers_["neighbors"].y_index_ == list(X.index[train])
        assert set(imputer.index_).isdisjoint(X.index[test])


def test_the_imputer_never_receives_the_target(spec, sample: pd.DataFrame) -> None:
    # Even a careless caller who hands over the whole table cannot feed the target in.
    pre = build_preprocessor(spec).set_params(impute__numeric=IndexRecorder())
    out = pre.fit(sample, sample[TARGET]).transform(sample)
    recorded = pre["impute"].named_transformers_["numeric"].columns_
    assert recorded == spec.numeric + spec.geo
    assert TARGET not in recorded
    assert not any(TARGET in name for name in out.columns)


def test_feature_names_are_stable_and_named(spec, xy) -> None:
    X, y = xy
    names = list(build_preprocessor(spec).fit(X, y).get_feature_names_out())
    expected = (
        [
            "ratio__rooms_per_household",
            "ratio__bedrooms_per_room",
            "ratio__population_per_household",
        ]
        + [f"log__{c}" for c in ["total_rooms", "total_bedrooms", "population", "households", "median_income"]]
        + [f"geo__cluster_{i}_similarity" for i in range(4)]
        + [f"neighbors__neighbors_{k}_mean_target" for k in spec.neighbor_ks]
        + [f"categorical__ocean_proximity_{c}" for c in CATEGORIES]
        + ["numeric__housing_median_age"]
    )
    assert names == expected
    # A fold that lacks a category still yields the same columns (categories come from config).
    without_island = X[X["ocean_proximity"] != "ISLAND"].head(200)
    out = build_preprocessor(spec).fit(without_island, y[without_island.index]).transform(X)
    assert list(out.columns) == expected


def test_every_feature_is_on_a_unit_scale_for_the_linear_families(spec, xy) -> None:
    # Ridge and lasso are candidates: a column in dollars (the neighbour means, std ~1e5) made
    # ridge's normal equations ill-conditioned (rcond 1e-16) and lasso stop unconverged.
    X, y = xy
    spread = build_preprocessor(spec).fit_transform(X, y).std(ddof=0)
    assert spread.max() <= 1.0 + 1e-7, spread.idxmax()  # float32 values: ~6e-8 apart near 1
    np.testing.assert_allclose(spread.filter(like="neighbors__"), 1.0)


@pytest.mark.filterwarnings("ignore:Found unknown categories")
def test_a_row_alone_in_a_batch_or_unseen_gives_the_same_features(spec, xy) -> None:
    X, y = xy
    pre = build_preprocessor(spec).fit(X, y)
    batch = X.iloc[:20]
    together = pre.transform(batch)
    alone = pd.concat([pre.transform(batch.iloc[[i]]) for i in range(len(batch))])
    pd.testing.assert_frame_equal(alone, together)

    strange = batch.iloc[[0, 1]].copy()
    strange["ocean_proximity"] = ["ON THE MOON", None]
    out = pre.transform(strange)
    onehot = [c for c in out.columns if c.startswith("categorical__")]
    assert (out[onehot] == 0).all(axis=None)
    rest = [c for c in out.columns if c not in onehot]
    pd.testing.assert_frame_equal(out[rest], together.iloc[[0, 1]][rest])


@pytest.mark.parametrize(
    "imputer",
    [
        {"strategy": "median", "params": {}},
        {"strategy": "mean", "params": {}},
        {"strategy": "knn", "params": {"n_neighbors": 3}},
        {"strategy": "iterative", "params": {"max_iter": 2, "n_estimators": 5, "max_depth": 4}},
    ],
)
def test_nan_in_every_numeric_column_at_predict_time_is_imputed(cfg, xy, imputer) -> None:
    X, y = xy
    spec = feature_spec_from_config(cfg, n_clusters=4, imputer=imputer)
    pre = build_preprocessor(spec).fit(X, y)
    holes = X.iloc[:3].copy()
    holes.loc[holes.index[0], INPUTS] = np.nan  # every numeric and geo value missing
    holes.loc[holes.index[1], "longitude"] = np.nan
    holes.loc[holes.index[2], "households"] = np.nan  # a ratio denominator
    out = pre.transform(holes)
    assert out.shape == (3, 21)
    assert np.isfinite(out.to_numpy(dtype=float)).all()


def test_neighbour_target_leaves_a_training_row_out_of_its_own_neighbourhood() -> None:
    coords = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 7.0]])
    y = np.array([1.0, 10.0, 100.0, 1000.0])
    nt = NeighborTargetFeatures((1, 2))
    # Row i's own price never appears in its feature: nearest others only.
    np.testing.assert_array_equal(nt.fit_transform(coords, y), [[10, 55], [1, 50.5], [10, 5.5], [100, 55]])
    # An unseen row at a training row's place sees that row: it is a neighbour, not itself.
    np.testing.assert_array_equal(nt.transform(coords[:2]), [[1, 5.5], [10, 5.5]])
    assert list(nt.get_feature_names_out()) == ["neighbors_1_mean_target", "neighbors_2_mean_target"]
    # k beyond the rows there are: the mean of all of them.
    np.testing.assert_array_equal(NeighborTargetFeatures((10,)).fit(coords, y).transform(coords[:1]), [[277.75]])


def test_neighbour_target_with_duplicate_coordinates_still_excludes_the_row() -> None:
    coords = np.zeros((6, 2))  # six districts at one place
    y = np.arange(6, dtype=float)
    out = NeighborTargetFeatures((5,)).fit_transform(coords, y)
    np.testing.assert_allclose(out[:, 0], (y.sum() - y) / 5)
    # More duplicates than k + 1: the tree may not return the row itself, yet it stays out.
    y = 10.0 ** np.arange(6)  # every pair of rows has a distinct sum
    out = NeighborTargetFeatures((2,)).fit_transform(coords, y)
    for i in range(6):
        others = {y[a] + y[b] for a in range(6) for b in range(a + 1, 6) if i not in (a, b)}
        assert 2 * out[i, 0] in others


def test_neighbour_target_ties_go_to_the_lower_training_row_as_a_full_scan_finds_them() -> None:
    rng = np.random.default_rng(0)
    # few distinct places, many rows each: most k-th neighbours are tied with the (k+1)-th
    places = rng.integers(0, 6, size=(400, 2)).astype(float) * 0.37
    y = rng.normal(size=400)
    queries = np.vstack([places[:50], rng.integers(0, 6, size=(50, 2)) * 0.37 + 0.1])
    nt = NeighborTargetFeatures((3, 10, 30)).fit(places, y)
    for query, got in zip(queries, nt.transform(queries), strict=True):
        squared = ((places - query) ** 2).sum(axis=1)
        by_distance_then_row = np.lexsort((np.arange(len(places)), squared))
        want = [y[by_distance_then_row[:k]].mean() for k in (3, 10, 30)]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_neighbour_target_needs_the_target() -> None:
    with pytest.raises(ValueError, match="needs the target y"):
        NeighborTargetFeatures((3,)).fit(np.zeros((4, 2)))


def test_ratio_with_zero_or_missing_denominator_is_nan_never_inf() -> None:
    frame = pd.DataFrame({"a": [1.0, 1.0, 1.0, 0.0, np.nan], "b": [2.0, 0.0, np.nan, 0.0, 1.0]})
    ratio = RatioFeatures([{"name": "a_per_b", "numerator": "a", "denominator": "b"}])
    out = ratio.fit(frame).transform(frame)
    np.testing.assert_array_equal(out[:, 0], [0.5, np.nan, np.nan, np.nan, np.nan])
    assert list(ratio.get_feature_names_out()) == ["a_per_b"]


def test_zero_denominator_in_the_preprocessor_gets_the_fitted_median_ratio(spec, xy) -> None:
    X, y = xy
    pre = build_preprocessor(spec).fit(X, y)
    row = X.iloc[[0]].copy()
    row["households"] = 0.0
    value = pre.transform(row)["ratio__rooms_per_household"].iloc[0]
    branch = pre["features"].named_transformers_["ratio"]
    median = branch["simpleimputer"].statistics_[0]
    scaler = branch["standardscaler"]
    assert np.isfinite(value)
    assert value == pytest.approx((median - scaler.mean_[0]) / scaler.scale_[0])


def test_cluster_similarity_weighted_by_target_really_uses_y(sample: pd.DataFrame) -> None:
    coords, y = sample[["longitude", "latitude"]], sample[TARGET]

    def centres(weighted: bool, target: Any) -> np.ndarray:
        cs = clusters(5, weighted_by_target=weighted)
        return cs.fit(coords, target).cluster_centers_

    plain = centres(False, None)
    np.testing.assert_allclose(centres(False, y), plain)  # unweighted ignores y
    np.testing.assert_allclose(centres(True, np.ones(len(y))), plain)  # uniform weight = none
    assert not np.allclose(centres(True, y), plain)

    fitted = clusters(5, weighted_by_target=True).fit(coords, y)
    out = fitted.transform(coords)
    assert out.shape == (len(coords), 5)  # one similarity per centre, not an ordinal label
    assert (out > 0).all()
    assert (out <= 1).all()
    assert list(fitted.get_feature_names_out()) == [f"cluster_{i}_similarity" for i in range(5)]


def test_cluster_similarity_rejects_a_negative_target_when_weighted(sample) -> None:
    coords = sample[["longitude", "latitude"]]
    with pytest.raises(ValueError, match=r"weighted_by_target=True needs .*non-negative"):
        clusters(3, weighted_by_target=True).fit(coords, -np.ones(len(coords)))


def test_fitted_preprocessor_survives_clone_and_pickle(spec, xy) -> None:
    X, y = xy
    pre = build_preprocessor(spec)
    assert clone(pre).get_params(deep=False).keys() == pre.get_params(deep=False).keys()
    pre.fit(X, y)
    again = pickle.loads(pickle.dumps(pre))
    pd.testing.assert_frame_equal(again.transform(X.head(50)), pre.transform(X.head(50)))


def test_feature_spec_json_round_trip(cfg) -> None:
    spec = feature_spec_from_config(
        cfg,
        imputer={"strategy": "knn", "params": {"n_neighbors": 3}},
        n_clusters=7,
        gamma=0.5,
        cluster_weighted_by_target=True,
        cluster_n_init=2,
        seed=7,
    )
    text = json.dumps(spec.to_dict())
    again = FeatureSpec.from_dict(json.loads(text))
    assert again == spec
    assert json.dumps(again.to_dict()) == text
    loaded = json.loads(text)
    loaded["ratios"][0]["name"] = "changed"
    assert spec.ratios[0]["name"] == "rooms_per_household"  # no aliasing of caller's data


def test_roles_come_from_config(cfg) -> None:
    spec = feature_spec_from_config(cfg, **CHOSEN)
    assert spec.numeric == cfg.data.features("numeric")
    assert spec.geo == ["longitude", "latitude"]
    assert spec.categorical == {"ocean_proximity": CATEGORIES}
    assert TARGET not in [*spec.numeric, *spec.geo, *spec.categorical]


def test_every_other_field_comes_from_config(cfg) -> None:
    spec = feature_spec_from_config(cfg, **CHOSEN)
    assert spec.ratios == [dataclasses.asdict(r) for r in cfg.data.ratios]
    assert spec.log_columns == cfg.data.log_columns
    assert (spec.gamma, spec.cluster_weighted_by_target, spec.cluster_n_init) == (
        cfg.features.gamma,
        cfg.features.weighted_by_target,
        cfg.features.n_init,
    )
    assert (spec.neighbor_ks, spec.seed) == (cfg.features.neighbor_ks, cfg.features.seed)
    assert (spec.imputer, spec.n_clusters) == (MEDIAN, 4)


@pytest.mark.parametrize("key", ["imputer", "n_clusters"])
def test_a_choice_config_cannot_make_is_required(cfg, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'features\.{key}' is missing"):
        feature_spec_from_config(cfg, **{k: v for k, v in CHOSEN.items() if k != key})
    spec = feature_spec_from_config(cfg, **CHOSEN).to_dict()
    del spec[key]
    with pytest.raises(ConfigError, match=rf"'features\.{key}' is missing"):
        FeatureSpec.from_dict(spec)  # e.g. a feature_spec.json from elsewhere


def test_another_dataset_needs_only_its_data_config(cfg) -> None:
    data = dataclasses.replace(
        cfg.data,
        source="other.csv",
        target="price",
        columns={
            "area": ColumnConfig(role="numeric", dtype="float"),
            "lat": ColumnConfig(role="geo", dtype="float"),
            "lon": ColumnConfig(role="geo", dtype="float"),
            "price": ColumnConfig(role="target", dtype="float"),
        },
        ratios=[],
        log_columns=[],
    )
    spec = feature_spec_from_config(dataclasses.replace(cfg, data=data), imputer=MEDIAN, n_clusters=2)
    assert (spec.numeric, spec.geo, spec.categorical) == (["area"], ["lat", "lon"], {})
    assert (spec.ratios, spec.log_columns) == ([], [])  # its own data.ratios and data.log_columns
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.uniform(1, 2, (30, 3)), columns=["area", "lat", "lon"])
    out = build_preprocessor(spec).fit_transform(X, rng.uniform(1, 2, 30))
    assert list(out.columns) == [
        "geo__cluster_0_similarity",
        "geo__cluster_1_similarity",
        *[f"neighbors__neighbors_{k}_mean_target" for k in cfg.features.neighbor_ks],
        "numeric__area",
    ]


@pytest.mark.parametrize(
    ("choices", "key"),
    [
        (
            {"ratios": [{"name": "r", "numerator": "longitude", "denominator": "households"}]},
            "features.ratios[0].numerator",
        ),
        ({"ratios": [{"name": "r", "numerator": "population"}]}, "features.ratios[0]"),
        ({"log_columns": ["ocean_proximity"]}, "features.log_columns[0]"),
        ({"n_clusters": 1}, "features.n_clusters"),
        ({"gamma": 0.0}, "features.gamma"),
        ({"cluster_n_init": 0}, "features.cluster_n_init"),
        ({"neighbor_ks": [0]}, "features.neighbor_ks"),
        ({"neighbor_ks": [3, 3]}, "features.neighbor_ks"),
        ({"imputer": {"strategy": "zero", "params": {}}}, "impute.strategy"),
        ({"typo": 1}, "features.typo"),
        ({"numeric": ["total_rooms"]}, "data.columns roles"),
    ],
)
def test_bad_feature_spec_names_the_field(cfg, choices, key) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")) as info:
        feature_spec_from_config(cfg, **{**CHOSEN, **choices})
    assert "\n" not in str(info.value)


def test_cluster_similarity_is_the_rbf_kernel_computed_without_cancellation() -> None:
    # rbf_kernel's |x|^2 - 2xc + |c|^2 form loses ~1e-11; the transformer sums differences axis
    # by axis (what the compiled graph does), so the two agree to that precision and no further
    from sklearn.metrics.pairwise import rbf_kernel

    rng = np.random.default_rng(0)
    coords = np.round(rng.uniform([-124, 32], [-114, 42], size=(500, 2)), 2)
    similarity = ClusterSimilarity(n_clusters=8, gamma=5.0, weighted_by_target=False, n_init=1, random_state=0)
    values = similarity.fit(coords).transform(coords)
    np.testing.assert_allclose(values, rbf_kernel(coords, similarity.cluster_centers_, gamma=5.0), rtol=1e-8, atol=0)
    diff = coords[:, None, :] - similarity.cluster_centers_[None]
    exact = np.exp(-5.0 * (diff[..., 0] * diff[..., 0] + diff[..., 1] * diff[..., 1]))
    assert np.array_equal(values, exact)
