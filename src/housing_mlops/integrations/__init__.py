"""Optional integrations that mirror the pipeline elsewhere (W&B); never a dependency of a step."""
