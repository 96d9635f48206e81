"""Benchmarks of the pipeline: `make bench` runs `python -m benchmarks.bench`."""
