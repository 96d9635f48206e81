"""Cross-validation in rounds of parallel folds: same scores, per-fold callbacks in order."""

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import parallel_config
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

from housing_mlops.modeling.evaluation import cross_validate, threads_per_worker


class FitLog(RegressorMixin, BaseEstimator):
    """Ridge that leaves one file per fit in `folder`: counts fits made in worker processes."""

    def __init__(self, folder: str = "") -> None:
        self.folder = folder

    def fit(self, X, y):
        self.model_ = Ridge().fit(X, y)
        Path(self.folder, f"fit-{len(X)}-{int(np.asarray(X)[0, 0] * 1e6)}").touch()
        return self

    def predict(self, X):
        return self.model_.predict(X)


class ThreadLog(FitLog):
    """Ridge that leaves a file naming the OpenMP threads its fit may start (HistGradientBoosting asks the same)."""

    def fit(self, X, y):
        self.model_ = Ridge().fit(X, y)
        Path(self.folder, f"threads-{_openmp_effective_n_threads()}-{uuid.uuid4()}").touch()
        return self


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    return X, X["a"] * 3 - X["b"] + rng.normal(size=200) + 100


@pytest.mark.parametrize("n_jobs", [2, 3])
def test_parallel_folds_score_exactly_as_sequential_ones(data, n_jobs: int) -> None:
    X, y = data
    seen: list[int] = []
    sequential = cross_validate(Ridge(), X, y, 5, seed=1)
    parallel = cross_validate(Ridge(), X, y, 5, seed=1, n_jobs=n_jobs, on_fold=lambda i, _: seen.append(i))
    timing = ["fit_s", "predict_s"]
    pd.testing.assert_frame_equal(sequential.drop(columns=timing), parallel.drop(columns=timing))
    assert seen == [0, 1, 2, 3, 4]


def test_a_callback_that_raises_stops_the_remaining_rounds(data, tmp_path: Path) -> None:
    X, y = data
    calls: list[int] = []

    def prune_after_fold_1(i: int, scores: dict[str, float]) -> None:
        calls.append(i)
        if i == 1:
            raise RuntimeError("pruned")

    with pytest.raises(RuntimeError, match="pruned"):
        cross_validate(FitLog(str(tmp_path)), X, y, 5, seed=1, n_jobs=2, on_fold=prune_after_fold_1)
    assert calls == [0, 1]
    assert len(list(tmp_path.iterdir())) == 2  # the first round only: folds 2-4 never fitted


def test_threads_are_split_between_workers() -> None:
    assert threads_per_worker(1) is None, "one worker keeps OMP_NUM_THREADS and friends"
    assert threads_per_worker(2) >= 1
    assert threads_per_worker(10_000) == 1


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_folds_fitted_at_once_share_the_cores_in_native_threads(data, tmp_path: Path, backend: str) -> None:
    X, y = data
    # select runs folds on joblib threads: the cap must reach each worker thread, not only the caller
    (fits := tmp_path / "fits").mkdir()
    with parallel_config(backend=backend):
        cross_validate(ThreadLog(str(fits)), X, y, 4, seed=1, n_jobs=4)
    threads = sorted(path.name.split("-")[1] for path in fits.iterdir())
    assert threads == [str(threads_per_worker(4))] * 4


def test_the_thread_cap_leaves_boosting_scores_as_they_were(data) -> None:
    X, y = data
    model = HistGradientBoostingRegressor(max_iter=30, random_state=0)
    timing = ["fit_s", "predict_s"]
    with parallel_config(backend="threading"):
        capped = cross_validate(model, X, y, 4, seed=1, n_jobs=2).drop(columns=timing)
    pd.testing.assert_frame_equal(cross_validate(model, X, y, 4, seed=1).drop(columns=timing), capped)
