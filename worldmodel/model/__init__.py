"""worldmodel.model."""
