"""Feature transformers (sklearn contract): ratios, geo-cluster similarity, neighbourhood target means.

Their parameters have no defaults: the values come from config/ through the FeatureSpec (ratios
from data.ratios, clusters and neighbours from features.*), the one place a default is written.
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.neighbors import KDTree
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

# The keys of one ratio (config data.ratios entries).
RATIO_KEYS = ("name", "numerator", "denominator")


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _input_names(estimator: BaseEstimator) -> list[str]:
    """Column names seen at fit, or sklearn's default x0..xn for arrays."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(estimator.n_features_in_)]


class RatioFeatures(TransformerMixin, BaseEstimator):
    """numerator / denominator per ratio; a zero, missing or non-finite result is NaN, never inf.

    `ratios` is a sequence of {"name", "numerator", "denominator"} (config data.ratios); a column
    is named as in the input frame, or given by position (int).
    """

    def __init__(self, ratios: Sequence[Mapping[str, Any]]) -> None:
        """Keep the parameter as given (sklearn convention); it is checked at fit.

        Args:
            ratios: the ratios to compute, each {"name", "numerator", "denominator"}.
        """
        self.ratios = ratios

    def fit(self, X: Any, y: Any = None) -> "RatioFeatures":
        """Locate each ratio's numerator and denominator columns."""
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        ratios = self._ratios()
        if not ratios:
            raise ValueError("RatioFeatures: ratios is empty; give at least one ratio")
        names = _input_names(self)
        self.pairs_ = [(self._locate(r, "numerator", names), self._locate(r, "denominator", names)) for r in ratios]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """One column per ratio; NaN where it is undefined."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        numerators = X[:, [n for n, _ in self.pairs_]]
        denominators = X[:, [d for _, d in self.pairs_]]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = numerators / denominators
        out[~np.isfinite(out)] = np.nan  # the preprocessor imputes the fit-time median instead
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Ratio names; they do not depend on the input names."""
        check_is_fitted(self)
        return np.asarray([str(r["name"]) for r in self._ratios()], dtype=object)

    def _ratios(self) -> list[Mapping[str, Any]]:
        if self.ratios is None or isinstance(self.ratios, str | Mapping):
            raise ValueError(f"RatioFeatures: ratios = {self.ratios!r} must be a list of ratios (config data.ratios)")
        for ratio in self.ratios:
            if not isinstance(ratio, Mapping) or set(ratio) != set(RATIO_KEYS):
                raise ValueError(f"RatioFeatures: ratio {ratio!r} must have exactly the keys {list(RATIO_KEYS)}")
        return list(self.ratios)

    @staticmethod
    def _locate(ratio: Mapping[str, Any], key: str, names: list[str]) -> int:
        ref = ratio[key]
        if isinstance(ref, int) and not isinstance(ref, bool):
            if not 0 <= ref < len(names):
                raise ValueError(
                    f"RatioFeatures: ratio {ratio['name']!r} {key} is column {ref} but X has n_features = {len(names)}"
                )
            return ref
        if ref not in names:
            raise ValueError(f"RatioFeatures: ratio {ratio['name']!r} {key} {ref!r} is not an input column {names}")
        return names.index(ref)

    def __sklearn_tags__(self) -> Tags:
        """The estimator's sklearn tags: missing values (NaN) are allowed in the input."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing inputs give a NaN ratio, imputed downstream
        return tags


class ClusterSimilarity(TransformerMixin, BaseEstimator):
    """RBF similarity of each row's coordinates to KMeans centres (Géron ch. 2).

    Similarities, not an ordinal cluster label: a label's numbering means nothing to a regressor.
    With weighted_by_target, fit weights rows by y so centres gravitate to expensive areas; the
    Pipeline passes fit's y down, so only the training fold's target is ever used.
    """

    # Parameters only transform reads (fit_transform is fit, then transform): a fitted instance
    # serves another gamma as it is, so the sweep's preprocessing cache fits KMeans once per K.
    transform_only_params: ClassVar[tuple[str, ...]] = ("gamma",)

    def __init__(
        self,
        n_clusters: int,
        gamma: float,
        weighted_by_target: bool,
        n_init: int,
        random_state: int | None,
    ) -> None:
        """Keep the parameters as given (sklearn convention); they are checked at fit.

        Args:
            n_clusters: number of KMeans centres, one similarity column each.
            gamma: the RBF kernel's gamma (larger: similarity falls off faster with distance).
            weighted_by_target: weight rows by the target y when fitting KMeans.
            n_init: KMeans runs with different centroid seeds; the best is kept.
            random_state: KMeans seed (None: not reproducible).
        """
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.weighted_by_target = weighted_by_target
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> "ClusterSimilarity":
        """KMeans on the coordinates (weighted by y when weighted_by_target)."""
        X = validate_data(self, X, dtype=np.float64)
        weight = None
        if self.weighted_by_target and y is not None:
            weight = np.asarray(y, dtype=np.float64).reshape(-1)
            if weight.shape[0] != X.shape[0]:
                raise ValueError(f"ClusterSimilarity: y has {weight.shape[0]} values for {X.shape[0]} rows")
            if not np.isfinite(weight).all() or (weight < 0).any() or weight.sum() <= 0:
                raise ValueError(
                    "ClusterSimilarity: weighted_by_target=True needs a finite, "
                    "non-negative target with a positive sum; set it to False"
                )
        self.kmeans_ = KMeans(n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(
            X, sample_weight=weight
        )
        self.cluster_centers_ = self.kmeans_.cluster_centers_
        return self

    def transform(self, X: Any) -> np.ndarray:
        """RBF similarity of each row to each centre."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        # not sklearn's rbf_kernel: its |x|^2 - 2xc + |c|^2 loses ~1e-11 to cancellation, which the
        # compiled graph cannot reproduce; differences summed axis by axis are what both compute
        return np.exp(-self.gamma * _squared(X[:, None, :], self.cluster_centers_[None]))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """cluster_<i>_similarity per centre."""
        check_is_fitted(self)
        count = self.cluster_centers_.shape[0]
        return np.asarray([f"cluster_{i}_similarity" for i in range(count)], dtype=object)


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared distances over the last axis, summed axis by axis in order (as the ONNX graph does)."""
    diff = a - b
    total = diff[..., 0] * diff[..., 0]
    for axis in range(1, diff.shape[-1]):
        total = total + diff[..., axis] * diff[..., axis]
    return total


class NeighborTargetFeatures(TransformerMixin, BaseEstimator):
    """Mean target of each row's k nearest training rows by coordinates, one column per k.

    Prices are local, and cluster similarities only approximate the neighbourhood: on the
    default data this feature takes 3-fold CV wMAPE of the default HistGradientBoosting from
    0.131 to 0.122. It is target encoding, so it must not leak: fit keeps the coordinates and
    target of the rows it is given (the Pipeline passes the training fold's y only), and
    fit_transform leaves each training row out of its own neighbourhood, as an unseen row is.
    """

    def __init__(self, n_neighbors: Sequence[int]) -> None:
        """Keep the parameter as given (sklearn convention); it is checked at fit.

        Args:
            n_neighbors: the k values, one output column each (integers >= 1).
        """
        self.n_neighbors = n_neighbors

    def fit(self, X: Any, y: Any = None) -> "NeighborTargetFeatures":
        """Keep the coordinates (as a KD-tree) and the target of the training rows."""
        if y is None:
            raise ValueError("NeighborTargetFeatures: fit needs the target y (the Pipeline passes it)")
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        ks = list(self.n_neighbors)
        if not ks or not all(is_int(k) and k >= 1 for k in ks):
            raise ValueError(f"NeighborTargetFeatures: n_neighbors = {ks!r} must be integers >= 1")
        if X.shape[0] < 2:
            raise ValueError(f"NeighborTargetFeatures: fit needs at least 2 rows, got n_samples = {X.shape[0]}")
        self.tree_ = KDTree(X)
        self.target_ = np.asarray(y, dtype=np.float64)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then each training row's means with the row itself left out."""
        self.fit(X, y)
        n = self.target_.shape[0]
        neighbours = self.tree_.query(np.asarray(self.tree_.data), k=min(max(self.n_neighbors) + 1, n))[1]
        is_self = neighbours == np.arange(n)[:, None]
        # A row with more exact duplicates than k + 1 may not find itself: drop its farthest instead.
        is_self[~is_self.any(axis=1), -1] = True
        return self._means(neighbours[~is_self].reshape(n, -1))

    def transform(self, X: Any) -> np.ndarray:
        """Mean target of each row's nearest training rows, one column per k.

        Equal distances are broken by the lower training-row index, so the result is defined
        whatever the tree's traversal order, and the compiled serving graph (ONNX TopK, whose
        ties go to the lower index) reproduces it exactly. Duplicate coordinates make such
        ties common here: about a third of the test rows have one at some k.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        points = np.asarray(self.tree_.data)
        n, k_max = points.shape[0], min(max(self.n_neighbors), self.target_.shape[0])
        nearest = self.tree_.query(X, k=min(k_max + 1, n))[1]
        distances = _squared(X[:, None, :], points[nearest])
        boundaries = [k for k in self.n_neighbors if k < nearest.shape[1]]
        tied = np.flatnonzero((distances[:, [k - 1 for k in boundaries]] == distances[:, boundaries]).any(axis=1))
        if tied.size:
            # Every training row as near as the k_max-th: a radius query (widened, since the tree
            # rounds its own way) then the exact sums above; not a scan of all rows per tied row,
            # which cost select ~10 s a family on the full data.
            reach = np.sqrt(distances[tied, k_max - 1]) * (1 + 1e-9) + 1e-12
            for row, around in zip(tied, self.tree_.query_radius(X[tied], reach), strict=True):
                around = np.sort(around)
                squared = _squared(X[row], points[around])
                within = squared <= distances[row, k_max - 1]
                candidates, squared = around[within], squared[within]
                nearest[row, :k_max] = candidates[np.argsort(squared, kind="stable")[:k_max]]
        return self._means(nearest[:, :k_max])

    def _means(self, neighbours: np.ndarray) -> np.ndarray:
        """Column j: mean target over the first n_neighbors[j] neighbours (all there are, if fewer)."""
        return np.column_stack([self.target_[neighbours[:, :k]].mean(axis=1) for k in self.n_neighbors])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """neighbors_<k>_mean_target per k."""
        check_is_fitted(self)
        return np.asarray([f"neighbors_{k}_mean_target" for k in self.n_neighbors], dtype=object)
