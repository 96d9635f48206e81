"""Serving: the Pipeline compiled to ONNX Runtime, its parity with sklearn, the loader MLflow calls."""
