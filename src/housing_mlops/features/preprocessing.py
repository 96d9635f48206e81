"""The one preprocessor built from a FeatureSpec: the first half of every model Pipeline.

Everything it learns (imputer statistics, median ratios, scaler statistics, KMeans centres) is fitted on
the training fold only and shipped with the model: predict time rebuilds features exactly as training did.
"""

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from housing_mlops.features.imputation import make_imputer
from housing_mlops.features.spec import FeatureSpec
from housing_mlops.features.transformers import ClusterSimilarity, NeighborTargetFeatures, RatioFeatures


def _log1p_clipped(X: Any) -> Any:
    """log1p of non-negative counts; a negative value (bad data) is clipped to 0, not NaN."""
    # float first: a swapped-in step without pandas output makes ColumnTransformer hand over
    # an object-dtype frame, on which ufuncs fail.
    return np.log1p(np.clip(np.asarray(X, dtype=np.float64), 0, None))


def _float32_values(X: Any) -> Any:
    """The features on float32's grid (kept as float64), as XGBoost and LightGBM take every input.

    Trees split at values training rows hold exactly, so for an unseen value next to such a
    threshold an ulp decides the side. The compiled graph computes exp, log and means a
    few float64 ulps away from numpy (and from itself at another batch size); rounded to
    float32, both land on the same value except across a rounding boundary, 2**29 float64 ulps
    apart. (Measured: a full-data model's test row 1 ulp above a threshold two training rows
    held went right in sklearn and left in the graph, 0.04 % off.)
    """
    return X.astype(np.float32).astype(np.float64)


def build_preprocessor(spec: FeatureSpec) -> Pipeline:
    """Unfitted Pipeline: raw feature frame (never the target) -> named pandas feature frame.

    "impute" fills every numeric and geo column (so a NaN anywhere at predict time is imputed);
    "features" derives ratios, logs, geo-cluster similarities, neighbourhood target means,
    one-hots and scaled numerics; "float32" rounds them to float32 values (`_float32_values`).
    """
    spec.validate()
    inputs = [*spec.numeric, *spec.geo]
    impute = ColumnTransformer(
        [("numeric", make_imputer(spec.imputer, seed=spec.seed), inputs)]
        + ([("categorical", "passthrough", list(spec.categorical))] if spec.categorical else []),
        verbose_feature_names_out=False,  # raw names: the "features" step selects by them
    )
    branches: list[tuple[str, Any, list[str]]] = []
    if spec.ratios:
        used = list(dict.fromkeys(c for r in spec.ratios for c in (r["numerator"], r["denominator"])))
        ratio = make_pipeline(
            RatioFeatures([dict(r) for r in spec.ratios]),
            SimpleImputer(strategy="median"),
            StandardScaler(),
        )
        branches.append(("ratio", ratio, used))
    if spec.log_columns:
        log = make_pipeline(FunctionTransformer(_log1p_clipped, feature_names_out="one-to-one"), StandardScaler())
        branches.append(("log", log, list(spec.log_columns)))
    if spec.geo:
        clusters = ClusterSimilarity(
            n_clusters=spec.n_clusters,
            gamma=spec.gamma,
            weighted_by_target=spec.cluster_weighted_by_target,
            n_init=spec.cluster_n_init,
            random_state=spec.seed,
        )
        branches.append(("geo", clusters, list(spec.geo)))
        if spec.neighbor_ks:
            # Scaled like every other numeric branch: in dollars, the means made ridge's normal
            # equations ill-conditioned (rcond 1e-16) and lasso stop unconverged. Trees are
            # unchanged by a per-column affine map (measured: bit-identical CV predictions).
            neighbors = make_pipeline(NeighborTargetFeatures(list(spec.neighbor_ks)), StandardScaler())
            branches.append(("neighbors", neighbors, list(spec.geo)))
    if spec.categorical:
        # Fixed categories from config: the same columns in every fold; unseen -> all zeros.
        onehot = OneHotEncoder(
            categories=[list(c) for c in spec.categorical.values()],
            handle_unknown="ignore",
            sparse_output=False,
        )
        branches.append(("categorical", onehot, list(spec.categorical)))
    rest = [c for c in spec.numeric if c not in spec.log_columns]
    if rest:
        branches.append(("numeric", StandardScaler(), rest))
    features = ColumnTransformer(branches)  # remainder="drop": nothing unlisted gets through
    to_float32 = FunctionTransformer(_float32_values, feature_names_out="one-to-one")
    return Pipeline([("impute", impute), ("features", features), ("float32", to_float32)]).set_output(
        transform="pandas"
    )
