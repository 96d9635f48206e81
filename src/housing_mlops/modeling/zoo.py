"""The model zoo: estimators built from config, grids, and the full Pipeline."""

import importlib
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import Pipeline

from housing_mlops.config.modeling import ModelConfig
from housing_mlops.features.preprocessing import build_preprocessor
from housing_mlops.features.spec import FeatureSpec


def estimator_from(path: str, params: dict[str, Any]) -> BaseEstimator:
    """An instance of the class at import path `path` with `params`."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)(**params)


def build_estimator(model: ModelConfig, params: dict[str, Any] | None = None) -> BaseEstimator:
    """The family's class with its fixed parameters, then `params` on top."""
    return estimator_from(model.estimator, {**model.fixed, **(params or {})})


def grid(model: ModelConfig, which: str) -> list[dict[str, Any]]:
    """Every combination of the family's `fast` or `full` grid ([{}] when empty)."""
    return list(ParameterGrid(dict(getattr(model, which)))) or [{}]


def make_pipeline(spec: FeatureSpec, estimator: BaseEstimator, memory: Any = None) -> Pipeline:
    """Preprocessing + regressor: the one object cross-validated, tuned and registered.

    The preprocessor's stages (impute, features, float32) are steps of this Pipeline, so `memory`
    (a joblib.Memory) reuses a fitted stage whose parameters and fold are unchanged: the
    imputer across every candidate and trial, the features across those sharing K and gamma.
    """
    return Pipeline([*build_preprocessor(spec).steps, ("model", estimator)], memory=memory)


def averaged(members: list[tuple[str, BaseEstimator]]) -> BaseEstimator:
    """The members' mean prediction as one regressor; a single member is returned as it is."""
    if len(members) == 1:
        return members[0][1]
    return VotingRegressor(members)
