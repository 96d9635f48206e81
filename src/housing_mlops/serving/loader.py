"""What `mlflow.pyfunc.load_model` calls for a housing_mlops model: the variant registration chose.

The python_function flavor of a registered version names this module; its data folder holds
serving.json (which variant, its runtime settings) and, for the compiled variant, model.onnx.
The sklearn Pipeline (the sklearn flavor, model.skops beside the folder) stays loadable either way.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io

from housing_mlops.serving.runtime import CompiledModel
from housing_mlops.serving.variants import ONNX

INFO = "serving.json"
GRAPH = "model.onnx"
SKLEARN_FILE = "model.skops"  # mlflow.sklearn's file name in the model folder


class SklearnVariant:
    """The sklearn Pipeline behind the pyfunc interface."""

    def __init__(self, pipeline: Any) -> None:
        """Wrap a fitted Pipeline."""
        self.pipeline = pipeline

    def predict(self, frame: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        """The Pipeline's predictions (`params`: MLflow's pyfunc argument, unused)."""
        return np.asarray(self.pipeline.predict(frame))


def _load_pyfunc(path: str) -> CompiledModel | SklearnVariant:
    """The served variant of the model whose serving folder is `path`."""
    folder = Path(path)
    info = json.loads((folder / INFO).read_text())
    if info["variant"] == ONNX:
        return CompiledModel((folder / GRAPH).read_bytes(), info["threads"], info["chunk_rows"])
    pipeline = skops.io.load(folder.parent / SKLEARN_FILE, trusted=info["trusted_types"])
    return SklearnVariant(pipeline)
