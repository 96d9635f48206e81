"""Thin MLflow entry points, one per step; run as `python -m steps.<name>`."""
