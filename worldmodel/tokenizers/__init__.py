"""worldmodel.tokenizers."""
