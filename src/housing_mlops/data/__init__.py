"""Data layer: reading the source, validating its schema, the stratified split. Pure: no tracking."""
