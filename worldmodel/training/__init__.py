"""worldmodel.training."""
