"""worldmodel.datasets."""
