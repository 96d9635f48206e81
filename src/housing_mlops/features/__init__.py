"""Feature layer: sklearn transformers, the feature spec, the preprocessor, imputation and clusters. Pure."""
