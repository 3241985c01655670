"""worldmodel.model: the shared MoE backbone (MLA attention, 3D RoPE, MoE, text bridge, KV cache)."""

from .attention import MultiHeadLatentAttention
from .bridge import GatedCrossAttention, TextContext
from .cache import KVCache
from .dense_attention import dense_causal_attention
from .ffn import FeedForward
from .moe import Experts, MoE
from .router import Router, Routing
from .text_encoder import TextEncoder
from .transformer import WorldModel, WorldModelOutput

__all__ = [
    "Experts",
    "FeedForward",
    "GatedCrossAttention",
    "KVCache",
    "MoE",
    "MultiHeadLatentAttention",
    "Router",
    "Routing",
    "TextContext",
    "TextEncoder",
    "WorldModel",
    "WorldModelOutput",
    "dense_causal_attention",
]
