"""The MLflow model of a registered version: one sklearn Pipeline, its compiled graph, one served variant.

A custom flavor module for `mlflow.models.Model.log`: `save_model` writes the sklearn flavor
(mlflow.sklearn, skops), the onnx flavor when the graph passed parity, and a python_function
flavor whose loader (housing_mlops.serving.loader) serves the variant registration chose. One
version, one alias: moving `champion` moves the Pipeline and its compiled twin together.
"""

import json
import sys
from pathlib import Path
from typing import Any

import mlflow
import onnx
from mlflow.models import Model
from mlflow.models.model import ModelInfo
from sklearn.pipeline import Pipeline

from housing_mlops.serving import loader
from housing_mlops.serving.variants import ONNX

SERVING_DIR = "serving"
# what monitoring compares a batch with (monitoring/reference.py), inside the model folder: a
# version's reference is where its model is, on any tracking server, with no local file
REFERENCE_FILE = "monitoring/reference.json"


def save_model(
    path: str,
    mlflow_model: Model,
    sk_model: Pipeline,
    graph: bytes | None,
    serving: dict[str, Any],
    reference: dict[str, Any],
    **sklearn_args: Any,
) -> None:
    """Write the model folder at `path` (called by Model.log with the run's `mlflow_model`).

    Args:
        path: the model folder to create.
        mlflow_model: the MLmodel being written (MLflow fills run and model ids).
        sk_model: the fitted Pipeline (the sklearn flavor, always present).
        graph: the compiled ONNX graph, or None when the sklearn variant is served.
        serving: serving.json: `variant` and its runtime settings.
        reference: the monitoring reference, written as REFERENCE_FILE.
        sklearn_args: arguments of mlflow.sklearn.save_model (signature, requirements, code...).
    """
    if serving["variant"] == ONNX and graph is None:
        raise ValueError("serving variant is onnx but no graph was given")
    mlflow.sklearn.save_model(sk_model, path, mlflow_model=mlflow_model, **sklearn_args)
    folder = Path(path) / SERVING_DIR
    folder.mkdir()
    info = {**serving, "trusted_types": sklearn_args["skops_trusted_types"]}
    (folder / loader.INFO).write_text(json.dumps(info, indent=2))
    if graph is not None:
        (folder / loader.GRAPH).write_bytes(graph)
        mlflow_model.add_flavor(
            "onnx",
            onnx_version=onnx.__version__,
            data=f"{SERVING_DIR}/{loader.GRAPH}",
            providers=["CPUExecutionProvider"],
        )
    reference_file = Path(path) / REFERENCE_FILE
    reference_file.parent.mkdir()
    reference_file.write_text(json.dumps(reference, allow_nan=False))
    pyfunc = mlflow_model.flavors["python_function"]
    pyfunc.pop("model_path", None)
    pyfunc["loader_module"] = loader.__name__
    pyfunc["data"] = SERVING_DIR
    mlflow_model.save(str(Path(path) / "MLmodel"))


def log_model(
    sk_model: Pipeline,
    graph: bytes | None,
    serving: dict[str, Any],
    reference: dict[str, Any],
    metadata: dict[str, Any],
    **sklearn_args: Any,
) -> ModelInfo:
    """Log the model as `model` in the active run (a LoggedModel, registrable by its URI)."""
    return Model.log(
        None,  # artifact_path: deprecated for `name`, but still positional in MLflow 3.17
        name="model",
        flavor=sys.modules[__name__],
        metadata=metadata,
        sk_model=sk_model,
        graph=graph,
        serving=serving,
        reference=reference,
        **sklearn_args,
    )
