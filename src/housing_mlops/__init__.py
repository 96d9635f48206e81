"""housing-mlops: the pure library behind the pipeline steps."""

__version__ = "0.1.0"
