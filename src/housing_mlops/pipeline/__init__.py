"""Pipeline layer: DAG, cache keys, step runner, orchestrator and tracking; the layer that talks to MLflow."""
