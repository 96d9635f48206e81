"""The K search: the decision rule, the candidate K values, and the search on a real sample."""

import dataclasses

import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from housing_mlops.config.schema import Config
from housing_mlops.features.spec import feature_spec_for
from housing_mlops.modeling import k_search
from housing_mlops.modeling.evaluation import cross_validate


def cv_table(rows: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"k": k, "cv_wmape": v, "cv_wmape_std": 0.01} for k, v in rows], columns=k_search.CV_COLUMNS)


def test_the_lowest_reference_cv_wins_over_the_silhouette() -> None:
    assert k_search.decide_k(cv_table([(10, 0.15), (25, 0.14), (30, 0.16)]), best_silhouette=25) == 25
    assert k_search.decide_k(cv_table([(10, 0.13), (25, 0.14)]), best_silhouette=25) == 10


def test_a_tie_goes_to_the_smaller_k_and_no_cv_means_the_silhouette_best() -> None:
    assert k_search.decide_k(cv_table([(10, 0.14), (30, 0.14)]), best_silhouette=30) == 10
    assert k_search.decide_k(cv_table([]), best_silhouette=35) == 35


def test_candidates_are_the_configured_ks_plus_the_silhouette_best(cfg: Config) -> None:
    features = dataclasses.replace(cfg.features, cv_ks=[30, 10, 50])
    assert k_search.cv_candidates(features, 25) == [10, 25, 30, 50]
    assert k_search.cv_candidates(features, 30) == [10, 30, 50]
    assert k_search.scan_ks(dataclasses.replace(cfg.features, k_min=4, k_max=12, k_step=4)) == [4, 8, 12]
    assert k_search.best_silhouette_k(pd.DataFrame({"k": [4, 8, 12], "silhouette": [0.3, 0.5, 0.5]})) == 8


@pytest.fixture(scope="module")
def small(full_data: pd.DataFrame, cfg: Config) -> tuple[Config, pd.DataFrame]:
    features = dataclasses.replace(
        cfg.features, k_min=4, k_max=12, k_step=4, cv_ks=[8], cv_folds=2, silhouette_sample=400, neighbor_ks=[3]
    )
    return dataclasses.replace(cfg, features=features), full_data.sample(400, random_state=2).reset_index(drop=True)


IMPUTER = {"strategy": "median", "params": {}}


def test_the_search_scores_each_candidate_and_picks_the_lowest(small: tuple[Config, pd.DataFrame]) -> None:
    cfg, train = small
    X, y = train[cfg.data.features()], train[cfg.data.target]

    def spec_for(k: int):
        return feature_spec_for(cfg, IMPUTER, k)

    search = k_search.search_k(X, y, cfg.data.features("geo"), cfg.features, spec_for, reference=Ridge())
    assert search.scan["k"].tolist() == [4, 8, 12]
    assert search.cv["k"].tolist() == k_search.cv_candidates(cfg.features, search.best_silhouette)
    assert search.chosen == int(search.cv.loc[search.cv["cv_wmape"].idxmin(), "k"])
    # each score is the reference Pipeline's own CV, preprocessing fitted inside the folds
    from sklearn.pipeline import Pipeline

    from housing_mlops.features.preprocessing import build_preprocessor

    k = int(search.cv["k"].iloc[0])
    pipeline = Pipeline([("preprocess", build_preprocessor(spec_for(k))), ("model", Ridge())])
    expected = cross_validate(pipeline, X, y, cfg.features.cv_folds, cfg.features.seed)["wmape"]
    assert search.cv["cv_wmape"].iloc[0] == pytest.approx(expected.mean(), rel=1e-12)
    assert search.table()["k"].tolist() == sorted({*search.scan["k"], *search.cv["k"]})


def test_silhouette_selection_runs_no_model(small: tuple[Config, pd.DataFrame]) -> None:
    cfg, train = small
    features = dataclasses.replace(cfg.features, selection="silhouette")
    X, y = train[cfg.data.features()], train[cfg.data.target]

    def never(k: int):
        raise AssertionError("no spec is built without a CV")

    search = k_search.search_k(X, y, cfg.data.features("geo"), features, never)
    assert search.cv.empty
    assert search.chosen == search.best_silhouette


def test_choose_features_returns_the_chosen_spec_and_its_preview(small: tuple[Config, pd.DataFrame]) -> None:
    cfg, train = small
    choice = k_search.choose_features(cfg, train, {**IMPUTER, "winner": "median"})
    assert choice.spec == feature_spec_for(cfg, IMPUTER, choice.search.chosen)
    assert choice.spec.n_clusters == choice.search.chosen
    assert len(choice.preview) == cfg.features.preview_rows
    cluster_columns = [c for c in choice.preview.columns if "cluster" in c.lower()]
    assert len(cluster_columns) == choice.search.chosen, list(choice.preview.columns)
    assert choice.preview.notna().all().all()
