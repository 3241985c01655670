"""One transformer block: RMSNorm -> MLA -> (gated cross-attention to text) -> RMSNorm -> dense FFN or MoE."""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadLatentAttention
from .bridge import GatedCrossAttention, TextContext
from .cache import KVCache
from .ffn import FeedForward
from .moe import MoE


class Block(nn.Module):
    """Pre-norm residual block; `ffn` is a `FeedForward` (dense layers) or a `MoE`; `bridge` is optional."""

    def __init__(
        self,
        attn: MultiHeadLatentAttention,
        ffn: FeedForward | MoE,
        bridge: GatedCrossAttention | None,
        d_model: int,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.attn = attn
        self.bridge = bridge
        self.ffn_norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.ffn = ffn

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        text: TextContext | None,
        cache: KVCache | None,
        layer: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """x (B, N, D) -> (x (B, N, D), MoE aux loss or None, MoE stats)."""
        x = x + self.attn(self.attn_norm(x), rope, cache, layer)
        if self.bridge is not None and text is not None:
            x = x + self.bridge(x, text)
        h = self.ffn_norm(x)
        if isinstance(self.ffn, MoE):
            y, aux, stats = self.ffn(h)
            return x + y, aux, stats
        return x + self.ffn(h), None, {}
