"""The compiled Pipeline in ONNX Runtime: a raw frame in, predictions out."""

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from housing_mlops.errors import SchemaError
from housing_mlops.serving.compile import NUMERIC_INPUT, layout_of


class CompiledModel:
    """An ONNX Runtime session over a compiled Pipeline, fed from a raw pandas frame.

    `threads` native threads per call (1: the calling thread only, nothing to start per row);
    batches run in chunks of `chunk_rows` so that the graph's [rows, training points] distance
    matrix stays bounded in memory.
    """

    def __init__(self, model: bytes, threads: int, chunk_rows: int) -> None:
        """Open the session.

        Args:
            model: the serialised ONNX graph (compile_pipeline's output).
            threads: ONNX Runtime intra-op threads.
            chunk_rows: rows per session call for large batches.
        """
        self.layout = layout_of(onnx.load_model_from_string(model))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.chunk_rows = chunk_rows

    def feeds(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's inputs from a frame with the raw feature columns."""
        missing = [c for c in (*self.layout.numeric, *self.layout.categorical) if c not in frame.columns]
        if missing:
            raise SchemaError(f"column(s) {missing} missing from the input frame")
        try:
            numeric = frame[self.layout.numeric].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"numeric column(s) {self.layout.numeric} hold non-numbers: {exc}") from exc
        feeds = {NUMERIC_INPUT: numeric}
        for column in self.layout.categorical:
            # NaN/None become "nan"/"None": unknown categories, all-zero one-hots as in sklearn
            feeds[column] = frame[column].to_numpy(dtype=object).astype(str).reshape(-1, 1)
        return feeds

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predictions, float64 [rows]."""
        if len(frame) <= self.chunk_rows:
            return self.session.run(None, self.feeds(frame))[0].reshape(-1)
        chunks = [frame.iloc[i : i + self.chunk_rows] for i in range(0, len(frame), self.chunk_rows)]
        return np.concatenate([self.session.run(None, self.feeds(c))[0].reshape(-1) for c in chunks])
