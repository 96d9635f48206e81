"""The imputation contest: candidate imputers, a masked-reconstruction score for each, a winner.

Scoring is self-supervised on the training features only: known values are hidden at random,
each imputer fills them back in, and the error is measured against the hidden truth. The
target never takes part, so the winning imputer can run unchanged at predict time.
"""

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (unlocks IterativeImputer)
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from housing_mlops.config.data import DataConfig
from housing_mlops.errors import ConfigError, HousingError, SchemaError

# Simplest first: pick_winner breaks ties in this order.
STRATEGIES = ("median", "mean", "knn", "iterative")
# The params each strategy needs, all of them, no defaults: their values live in config
# impute.strategies (config/impute/*.yaml), copied into feature_spec.json with the winner.
PARAMS: dict[str, tuple[str, ...]] = {
    "median": (),
    "mean": (),
    "knn": ("n_neighbors",),
    "iterative": ("max_iter", "n_estimators", "max_depth"),
}


# RoundsImputer's one warning, dropped for the whole process when this module is imported (as it
# is wherever a RoundsImputer is built or unpickled, loky and forkserver workers too). Not with
# catch_warnings around each fit: it swaps the process-wide filter list, so on threads (select
# fits folds on threads) any other block ending mid-fit restores a list without the filter.
warnings.filterwarnings("ignore", r"\[IterativeImputer\] Early stopping criterion not reached", ConvergenceWarning)


class RoundsImputer(IterativeImputer):
    """IterativeImputer run for its `max_iter` rounds, without a "not converged" warning.

    The rounds are a budget set in config (impute.strategies.iterative), not a convergence test:
    with one incomplete column a second round refits the same forest, so sklearn's warning that
    early stopping was not reached after one round is noise in every fold's fit (filtered above).
    """


class ScaledKNNImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """KNNImputer on standardised columns; imputed values come back in original units.

    KNNImputer measures distance in raw units, so without scaling the widest column
    (total_rooms, population: thousands) alone decides who the neighbours are.
    """

    def __init__(self, n_neighbors: int) -> None:
        """Keep the parameter as given (sklearn convention); it is checked at fit.

        Args:
            n_neighbors: how many neighbours KNNImputer averages over, in standardised units.
        """
        self.n_neighbors = n_neighbors

    def fit(self, X: Any, y: Any = None) -> "ScaledKNNImputer":
        """Fit the scaler and the KNNImputer on the scaled columns."""
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64)
        empty = np.flatnonzero(np.isnan(X).all(axis=0))
        if empty.size:
            # Scaler statistics of an all-missing column are NaN; nothing could be imputed.
            raise ValueError(f"ScaledKNNImputer: column(s) {empty.tolist()} have no known value")
        self.scaler_ = StandardScaler().fit(X)  # NaN is ignored when fitting
        self.knn_ = KNNImputer(n_neighbors=self.n_neighbors).fit(self.scaler_.transform(X))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Fill missing values; known values pass through unchanged."""
        check_is_fitted(self)
        X = validate_data(self, X, ensure_all_finite="allow-nan", dtype=np.float64, reset=False)
        imputed = self.scaler_.inverse_transform(self.knn_.transform(self.scaler_.transform(X)))
        # Known values pass through untouched (scale + unscale is not bit-exact).
        missing = np.isnan(X)
        out = X.copy()
        out[missing] = imputed[missing]
        return out

    def __sklearn_tags__(self) -> Tags:
        """The estimator's sklearn tags: missing values (NaN) are allowed in the input."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def make_imputer(spec: Mapping[str, Any], seed: int) -> Any:
    """An unfitted imputer from {"strategy": ..., "params": {...}} with every param of the strategy.

    `seed` is the random_state of the iterative strategy's forest and rounds.
    """
    unknown = sorted(set(spec) - {"strategy", "params"})
    if unknown:
        raise ConfigError(
            f"config key 'impute.{unknown[0]}' is not allowed: expected only impute.strategy and impute.params"
        )
    strategy = spec.get("strategy")
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"config key 'impute.strategy' = {strategy!r} is not allowed: expected {' | '.join(STRATEGIES)}"
        )
    params = dict(spec.get("params") or {})
    needed = PARAMS[strategy]
    for key, value in params.items():
        if key not in needed:
            raise ConfigError(
                f"config key 'impute.params.{key}' is not allowed for strategy "
                f"{strategy!r}: expected keys among {sorted(needed) or 'none'}"
            )
        _check_param(key, value)
    absent = [key for key in needed if key not in params]
    if absent:
        raise ConfigError(
            f"config key 'impute.params.{absent[0]}' is missing for strategy {strategy!r}: "
            f"give all of {list(needed)} (config impute.strategies.{strategy})"
        )
    if strategy in ("median", "mean"):
        return SimpleImputer(strategy=strategy)
    if strategy == "knn":
        return ScaledKNNImputer(n_neighbors=params["n_neighbors"])
    forest = RandomForestRegressor(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        random_state=seed,
    )
    # skip_complete: only columns missing at fit get a forest (the cost that matters); a column
    # complete at fit but missing at predict falls back to initial_strategy, never an error.
    return RoundsImputer(
        estimator=forest,
        max_iter=params["max_iter"],
        initial_strategy="median",
        skip_complete=True,
        random_state=seed,
    )


def _check_param(key: str, value: Any) -> None:
    if value is None and key == "max_depth":
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        nullable = " or null" if key == "max_depth" else ""
        raise ConfigError(
            f"config key 'impute.params.{key}' = {value!r} is not allowed: expected an integer >= 1{nullable}"
        )


def imputer_inputs(df: pd.DataFrame, data: DataConfig) -> pd.DataFrame:
    """The columns an imputer may see: numeric and geo features from config, never the target."""
    columns = data.features("numeric", "geo")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"column(s) {missing} declared numeric/geo in config data.columns are not in the frame")
    return df[columns]


SCORE_COLUMNS = ("strategy", "column", "rmse_mean", "rmse_std", "seconds")


def score_strategies(
    X: pd.DataFrame,
    strategies: Mapping[str, Mapping[str, Any]],
    n_folds: int,
    mask_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """RMSE of each strategy at reconstructing randomly hidden known values.

    `strategies` maps a strategy name to its params, as config impute.strategies does.
    One row per (strategy, column with missing values) with rmse_mean, rmse_std (over folds,
    ddof=0) and seconds (mean fit+transform time); no rows when nothing is missing. Each fold
    hides `mask_fraction` of every such column's known values; all strategies see the same masks.
    """
    bad = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]
    if bad:
        raise SchemaError(
            f"score_strategies: column(s) {bad} are not numeric; pass numeric "
            "feature columns only (e.g. imputer_inputs(df, data)), never the target"
        )
    if not 0 < mask_fraction < 1:
        raise ConfigError(f"mask_fraction = {mask_fraction!r} is not allowed: expected in (0, 1)")
    if n_folds < 1:
        raise ConfigError(f"n_folds = {n_folds!r} is not allowed: expected an integer >= 1")
    for name in strategies:
        if name not in STRATEGIES:
            raise ConfigError(
                f"config key 'impute.strategies.{name}' is not allowed: expected names among {' | '.join(STRATEGIES)}"
            )
    # Built before any work, so a bad param fails at once, not after the first fold.
    imputers = {name: make_imputer({"strategy": name, "params": params}, seed) for name, params in strategies.items()}
    values = X.to_numpy(dtype=np.float64)
    scored = [j for j in range(values.shape[1]) if np.isnan(values[:, j]).any()]
    rng = np.random.default_rng(seed)
    records = []
    for fold in range(n_folds):
        masked, hidden = values.copy(), {}
        for j in scored:
            known = np.flatnonzero(~np.isnan(values[:, j]))
            if known.size < 2:
                raise SchemaError(
                    f"column '{X.columns[j]}' has {known.size} known value(s); at least 2 are needed to score imputers"
                )
            count = min(max(1, round(mask_fraction * known.size)), known.size - 1)
            hidden[j] = rng.choice(known, size=count, replace=False)
            masked[hidden[j], j] = np.nan
        frame = pd.DataFrame(masked, columns=X.columns, index=X.index)
        for name, imputer in imputers.items():
            start = time.perf_counter()
            filled = np.asarray(clone(imputer).fit_transform(frame), dtype=np.float64)
            seconds = time.perf_counter() - start
            for j, rows in hidden.items():
                error = filled[rows, j] - values[rows, j]
                records.append(
                    {
                        "strategy": name,
                        "column": str(X.columns[j]),
                        "fold": fold,
                        "rmse": math.sqrt(float(np.mean(error**2))),
                        "seconds": seconds,
                    }
                )
    if not records:
        return pd.DataFrame(columns=list(SCORE_COLUMNS))
    folds = pd.DataFrame(records)
    scores = folds.groupby(["strategy", "column"], sort=False).agg(
        rmse_mean=("rmse", "mean"),
        rmse_std=("rmse", lambda s: float(np.std(s))),
        seconds=("seconds", "mean"),
    )
    return scores.reset_index()


def pick_winner(scores: pd.DataFrame) -> str:
    """Lowest RMSE averaged over scored columns; ties go to the simpler strategy.

    The average is in raw units, so with several scored columns the widest one dominates.
    """
    if scores.empty:
        raise HousingError("pick_winner: no scores; score_strategies returned no rows")
    means = scores.groupby("strategy", sort=False)["rmse_mean"].mean()
    tied = means.index[np.isclose(means.to_numpy(), means.min(), rtol=1e-9, atol=0.0)]
    simplicity = {name: i for i, name in enumerate(STRATEGIES)}
    return str(min(tied, key=lambda name: (simplicity.get(name, len(STRATEGIES)), name)))
