"""Registry layer: promotion gate, model card, hardware profile (pure), and `store`, its one MLflow module."""
