"""One transformer block: RMSNorm -> MLA -> (gated cross-attention to text) -> RMSNorm -> dense FFN or MoE.

With a `DepthRouter` (Mixture-of-Depths) only the routed tokens run the block and see each other in its attention;
the others pass by the residual (see depth_router.py).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadLatentAttention
from .bridge import GatedCrossAttention, TextContext
from .cache import KVCache
from .depth_router import DepthRouter, Route
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
        depth_router: DepthRouter | None = None,
    ) -> None:
        super().__init__()
        self.depth_router = depth_router
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
        with_stats: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """x (B, N, D) -> (x (B, N, D), MoE aux loss (+ MoD predictor loss) or None, MoE (+ MoD) stats).

        `with_stats=False` (decoding in eval mode) lets the MoE skip its auxiliary loss and statistics.
        """
        if self.depth_router is not None:
            return self._routed(x, rope, text, cache, layer, with_stats)
        x = x + self.attn(self.attn_norm(x), rope, cache, layer)
        if self.bridge is not None and text is not None:
            x = x + self.bridge(x, text)
        h = self.ffn_norm(x)
        if isinstance(self.ffn, MoE):
            y, aux, stats = self.ffn(h, with_stats)
            return x + y, aux, stats
        return x + self.ffn(h), None, {}

    def _routed(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        text: TextContext | None,
        cache: KVCache | None,
        layer: int,
        with_stats: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """Mixture-of-Depths: the block runs on the routed tokens only, and they attend only to each other."""
        extra: dict = {}

        def block(x_all: torch.Tensor, route: Route) -> torch.Tensor:
            x_in = route.gather(x_all)  # (B, k, D)
            if cache is None and not self.attn.sparse_block_size:  # attention over the (B, k) routed sequence
                cos, sin = rope[0][route.index], rope[1][route.index]  # (B, k, dr) their own positions
                key_valid = None if route.all_valid else route.valid  # hide padding
                h = x_in + self.attn(self.attn_norm(x_in), (cos, sin), None, layer, key_valid=key_valid)
            else:  # every token writes its latent (to the cache), visible only if it entered
                key_valid = route.entered(x_all.shape[1])  # (B, N)
                h = x_in + self.attn(self.attn_norm(x_all), rope, cache, layer, route.index, key_valid)
            if self.bridge is not None and text is not None:
                h = h + self.bridge(h, text)
            if isinstance(self.ffn, MoE):
                y, extra["aux"], extra["stats"] = self.ffn(self.ffn_norm(h), with_stats)
            else:
                y = self.ffn(self.ffn_norm(h))
            return h + y - x_in  # (B, k, D) the block's residual update

        x, route, predictor_loss = self.depth_router(x, block)
        aux = predictor_loss if extra.get("aux") is None else extra["aux"] + predictor_loss
        stats = {**extra.get("stats", {}), "mod_skipped_share": 1 - route.entered(x.shape[1]).float().mean()}
        return x, aux, stats
