"""Choosing K for the geo clusters.

A silhouette scan, then a reference model's CV wMAPE on a few candidate K values, and the spec of
the chosen K.

It lives in the modeling layer because the decision cross-validates a model.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from housing_mlops.config.modeling import FeaturesConfig
from housing_mlops.config.schema import Config
from housing_mlops.features.clusters import silhouette_scan
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec, feature_spec_for
from housing_mlops.modeling.evaluation import cross_validate

log = logging.getLogger(__name__)

CV_COLUMNS = ["k", "cv_wmape", "cv_wmape_std"]


@dataclass(frozen=True)
class KSearch:
    """The silhouette scan, the reference CV per scored K, and the decision."""

    scan: pd.DataFrame  # k, inertia, silhouette
    cv: pd.DataFrame  # k, cv_wmape, cv_wmape_std; empty when features.selection = silhouette
    best_silhouette: int
    chosen: int

    def table(self) -> pd.DataFrame:
        """Scan and CV side by side, one row per K."""
        return self.scan.merge(self.cv, on="k", how="outer").sort_values("k")


@dataclass(frozen=True)
class FeatureChoice:
    """What the features step publishes: the chosen spec, its search and a transformed preview."""

    spec: FeatureSpec
    search: KSearch
    preview: pd.DataFrame


def scan_ks(cfg: FeaturesConfig) -> list[int]:
    """The K values of the silhouette scan: range(k_min, k_max + 1, k_step)."""
    return list(range(cfg.k_min, cfg.k_max + 1, cfg.k_step))


def reference_model(seed: int) -> BaseEstimator:
    """The model that scores candidate K: sklearn's default HistGradientBoosting, seeded.

    Deliberately untuned (not a zoo family): K is chosen before select, for any winner.
    """
    return HistGradientBoostingRegressor(random_state=seed)


def best_silhouette_k(scan: pd.DataFrame) -> int:
    """The K of the highest silhouette (the first one on a tie)."""
    # pandas-stubs: .loc rejects the Hashable label idxmax is typed to return (a label of `scan`)
    return int(scan.loc[scan["silhouette"].idxmax(), "k"])  # type: ignore[index, call-overload]


def cv_candidates(cfg: FeaturesConfig, best_silhouette: int) -> list[int]:
    """K values the reference model scores: features.cv_ks plus the silhouette best, ascending."""
    return sorted({*cfg.cv_ks, best_silhouette})


def decide_k(cv: pd.DataFrame, best_silhouette: int) -> int:
    """Lowest reference CV wMAPE (the first one on a tie); the silhouette best without a CV."""
    # pandas-stubs: .loc rejects the Hashable label idxmin is typed to return (a label of `cv`)
    return int(cv.loc[cv["cv_wmape"].idxmin(), "k"]) if not cv.empty else best_silhouette  # type: ignore[index, call-overload]


def search_k(
    X: pd.DataFrame,
    y: pd.Series,
    geo: list[str],
    cfg: FeaturesConfig,
    spec_for: Callable[[int], FeatureSpec],
    reference: BaseEstimator | None = None,
) -> KSearch:
    """Search K: a silhouette scan, then (selection = cv) a CV comparison of the candidates.

    The silhouette scan runs over `scan_ks(cfg)`; with selection = cv, the reference model's CV
    wMAPE of the full Pipeline follows for each of `cv_candidates`. `reference` defaults to
    `reference_model`.
    """
    weights = y if cfg.weighted_by_target else None
    scan = silhouette_scan(X[geo], scan_ks(cfg), cfg.silhouette_sample, cfg.seed, cfg.n_init, weights)
    best = best_silhouette_k(scan)
    rows: list[dict[str, Any]] = []
    if cfg.selection == "cv":
        model = reference if reference is not None else reference_model(cfg.seed)
        for k in cv_candidates(cfg, best):
            pipeline = Pipeline([("preprocess", build_preprocessor(spec_for(k))), ("model", model)])
            # all folds at once in 1-thread processes: one fold on an OpenMP pool of every core spins
            # against any other load (beside two CPU burners this step took 270 s instead of 18 s)
            scores = cross_validate(pipeline, X, y, cfg.cv_folds, cfg.seed, n_jobs=cfg.cv_folds)
            rows.append({"k": k, "cv_wmape": scores["wmape"].mean(), "cv_wmape_std": scores["wmape"].std()})
            log.info(f"K={k}: reference CV wMAPE {rows[-1]['cv_wmape']:.4f}")
    cv = pd.DataFrame(rows, columns=CV_COLUMNS)
    return KSearch(scan, cv, best, decide_k(cv, best))


def choose_features(cfg: Config, train: pd.DataFrame, imputer: Mapping[str, Any]) -> FeatureChoice:
    """The features step's work on train: the K search, the chosen spec, and a preview.

    The preview is the first `features.preview_rows` rows transformed by the preprocessor fitted on
    all of train.
    """
    data = cfg.data
    X, y = train[data.features()], train[data.target]
    chosen_imputer = {"strategy": imputer["strategy"], "params": imputer["params"]}

    def spec_for(k: int) -> FeatureSpec:
        return feature_spec_for(cfg, chosen_imputer, k)

    search = search_k(X, y, data.features("geo"), cfg.features, spec_for)
    spec = spec_for(search.chosen)
    preview = build_preprocessor(spec).fit(X, y).transform(X.head(cfg.features.preview_rows))
    return FeatureChoice(spec, search, preview)
