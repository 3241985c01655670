"""worldmodel.tokenizers: video <-> discrete codes (``VideoTokenizer``) and its quantizers."""

from worldmodel.tokenizers.quantizers import FSQ, VectorQuantizerEMA
from worldmodel.tokenizers.video_tokenizer import TokenizerOutput, VideoTokenizer

__all__ = ["FSQ", "TokenizerOutput", "VectorQuantizerEMA", "VideoTokenizer"]
