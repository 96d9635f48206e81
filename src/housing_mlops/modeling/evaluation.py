"""Cross-validation of a whole Pipeline (preprocessing + model) on the training data.

Preprocessing is part of the cloned pipeline, so it is fitted inside each fold on that
fold's training rows only.
"""

import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from housing_mlops.modeling import leaf_values
from housing_mlops.modeling.metrics import evaluate


def folds(n_rows: int, n_folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Seeded, shuffled K-fold indices: the same folds for every candidate and trial."""
    yield from KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n_rows))


def threads_per_worker(n_workers: int) -> int | None:
    """Native threads (OpenMP, BLAS) each of several workers may use: the cores split evenly.

    More threads than cores makes OpenMP spin against itself (HistGradientBoosting fits run
    ~10x slower). One worker keeps the process's own setting (e.g. OMP_NUM_THREADS): None.
    """
    return None if n_workers == 1 else max(1, len(os.sched_getaffinity(0)) // n_workers)


def fit_and_score(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    with_train: bool = False,
    threads: int | None = None,
) -> dict[str, float]:
    """Fit a clone on the fold's training rows; every metric on its held-out rows.

    `threads` caps native threads (OpenMP, BLAS) for this fit. The cap is per thread, so it is set
    here, in the worker that fits: a cap in the caller does not reach joblib's threads.
    """
    leaf_values.install()
    with threadpool_limits(threads):
        fitted = clone(model)
        started = time.perf_counter()
        fitted.fit(X.iloc[train_idx], y.iloc[train_idx])
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        predicted = fitted.predict(X.iloc[test_idx])
        scores = evaluate(y.iloc[test_idx], predicted)
        scores |= {"fit_s": fit_s, "predict_s": time.perf_counter() - started}
        if with_train:
            train_scores = evaluate(y.iloc[train_idx], fitted.predict(X.iloc[train_idx]))
            scores |= {f"train_{k}": v for k, v in train_scores.items()}
        return scores


def cross_validate(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series,
    n_folds: int,
    seed: int,
    n_jobs: int = 1,
    with_train: bool = False,
    on_fold: Callable[[int, dict[str, float]], None] | None = None,
) -> pd.DataFrame:
    """One row of metrics per fold, on `n_jobs` processes; fold results do not depend on n_jobs.

    With `on_fold`, folds run in rounds of n_jobs, and after each round `on_fold(i, scores)` is
    called for its folds in order (for progress and pruning); an exception it raises stops the
    remaining rounds. Each of the n_jobs folds at once gets its share of the cores in native
    threads: a HistGradientBoosting fit on a thread of its own would start an OpenMP pool of every
    core and the folds would spin against each other (select's boosting grid: 38 s vs 19 s).
    """
    splits = list(folds(len(X), n_folds, seed))
    threads = threads_per_worker(n_jobs)
    round_size = n_jobs if on_fold is not None else len(splits)
    rows: list[dict[str, float]] = []
    with Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(splits), round_size):
            chunk = splits[start : start + round_size]
            scored = parallel(delayed(fit_and_score)(model, X, y, tr, te, with_train, threads) for tr, te in chunk)
            for i, scores in enumerate(scored, start=start):
                rows.append(scores)
                if on_fold is not None:
                    on_fold(i, scores)
    return pd.DataFrame(rows).rename_axis("fold").reset_index()


def segment_wmape(segments: pd.DataFrame, y_true: pd.Series, y_pred: np.ndarray) -> pd.DataFrame:
    """Weighted MAPE (wMAPE) and row count per value of each segment column (e.g. ocean_proximity)."""
    frame = segments.assign(_abs_err=np.abs(y_true.to_numpy() - y_pred), _abs_y=np.abs(y_true.to_numpy()))
    rows = []
    for column in segments.columns:
        for value, group in frame.groupby(column, observed=True):
            rows.append(
                {
                    "segment": column,
                    "value": str(value),
                    "rows": len(group),
                    "wmape": float(group["_abs_err"].sum() / group["_abs_y"].sum()),
                }
            )
    return pd.DataFrame(rows)
