"""Config layer: the typed schema of config/ and its loading through Hydra."""
