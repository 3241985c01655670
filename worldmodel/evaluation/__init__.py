"""worldmodel.evaluation."""
