"""Modeling layer: metrics, the model zoo, cross-validation, selection and tuning. Pure: no tracking."""
