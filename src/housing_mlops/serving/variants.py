"""The compiled variant of a fitted Pipeline: convert, check parity, or say in one line why not."""

from dataclasses import dataclass

import pandas as pd
from sklearn.pipeline import Pipeline

from housing_mlops.config.serving import ServingConfig
from housing_mlops.serving import parity
from housing_mlops.serving.compile import ConversionError, compile_pipeline
from housing_mlops.serving.runtime import CompiledModel

SKLEARN, ONNX = "sklearn", "onnx"


@dataclass(frozen=True)
class Compiled:
    """The ONNX graph when it converted and agrees with sklearn; else None and the reason."""

    onnx: bytes | None
    parity: parity.Parity | None
    reason: str


def compile_checked(model: Pipeline, train: pd.DataFrame, test: pd.DataFrame, cfg: ServingConfig) -> Compiled:
    """Compile `model` (thresholds aligned on `train`) and measure its parity on `test` and odd rows.

    `train` and `test` hold the raw feature columns only.
    """
    if not cfg.compile:
        return Compiled(None, None, "serving.compile is false")
    try:
        graph = compile_pipeline(model, cfg.opset, train).SerializeToString()
    except ConversionError as exc:
        return Compiled(None, None, str(exc))
    compiled = CompiledModel(graph, cfg.threads, cfg.chunk_rows)
    odd = parity.odd_rows(test, compiled.layout.numeric, compiled.layout.categorical)
    batches = {"the test set": test, "the odd rows": odd}
    batches |= {f"odd row {i} alone": odd.iloc[[i]] for i in range(len(odd))}
    batches["each test row alone"] = test
    measured = parity.check(model.predict, compiled.predict, batches, cfg.max_rel_error, alone=("each test row alone",))
    if not measured.passed:
        return Compiled(None, measured, f"parity failed: {measured.reason}")
    return Compiled(graph, measured, measured.reason)
