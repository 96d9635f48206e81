"""Serving: the Pipeline compiled to ONNX Runtime, its parity with sklearn, the loader MLflow calls.

Also the middleware around MLflow's scoring app and the capture writer behind it (inference capture).
"""
