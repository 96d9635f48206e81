"""One small real model per test session: a reference built from a sample of the real train split.

The model is a plain sklearn Pipeline (median imputation, one-hot, 60 boosting rounds) so that
fitting it, and its 3-fold out-of-fold predictions, take about a second; the monitor only sees
its predictions. Native threads are pinned to 1: two xdist workers on two cores with OpenMP's
spinning threads each took 25 s instead of 2 s to fit.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from housing_mlops.config.schema import Config
from housing_mlops.data.split import split
from housing_mlops.modeling.metrics import evaluate
from housing_mlops.monitoring.reference import Reference, build_reference

TRAIN_ROWS = 4000


@dataclass(frozen=True)
class Fitted:
    model: Pipeline
    reference: Reference
    train: pd.DataFrame
    test: pd.DataFrame  # the sealed test rows, labelled, index 0..n-1

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        with threadpool_limits(1):
            return np.asarray(self.model.predict(X))


def small_model(cfg: Config) -> Pipeline:
    data = cfg.data
    columns = ColumnTransformer(
        [
            ("numeric", SimpleImputer(strategy="median"), data.features("numeric", "geo")),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), data.features("categorical")),
        ]
    )
    return make_pipeline(columns, HistGradientBoostingRegressor(max_iter=60, random_state=0))


@pytest.fixture(scope="session")
def fitted(cfg: Config, full_data: pd.DataFrame) -> Fitted:
    train, test = split(full_data, cfg.data, cfg.split)
    train = train.sample(TRAIN_ROWS, random_state=0)
    X, y = train[cfg.data.features()], train[cfg.data.target]
    model = small_model(cfg)
    test = test.reset_index(drop=True)
    with threadpool_limits(1):
        oof = cross_val_predict(model, X, y, cv=KFold(3, shuffle=True, random_state=0))
        model.fit(X, y)
        metrics = evaluate(test[cfg.data.target], model.predict(test[cfg.data.features()]))
    reference = build_reference(train, oof, metrics, cfg.data, cfg.registry.reference.bins)
    return Fitted(model, reference, train, test)
