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
        With a depth router, the tokens it routes (k of N per row) run the block and add their weighted update;
        the others keep their state.
        """
        route, predictor_loss = self.depth_router(x) if self.depth_router is not None else (None, None)
        x_in = x if route is None else route.gather(x)  # (B, N or k, D) the tokens that run the block
        h = x_in + self._attention(x, x_in, rope, cache, layer, route)
        if self.bridge is not None and text is not None:
            h = h + self.bridge(h, text)
        y, aux, stats = self._ffn(self.ffn_norm(h), with_stats)
        if route is None:
            return h + y, aux, stats
        x = self.depth_router.add(x, route, h + y - x_in)  # (B, N, D)
        aux = predictor_loss if aux is None else aux + predictor_loss
        return x, aux, {**stats, "mod_skipped_share": 1 - route.entered(x.shape[1]).float().mean()}

    def _attention(
        self,
        x: torch.Tensor,
        x_in: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache | None,
        layer: int,
        route: Route | None,
    ) -> torch.Tensor:
        """Self-attention update (B, N or k, D) of the tokens `x_in` that run the block (all of `x` (B, N, D) or
        the routed ones): routed tokens attend only to each other."""
        if route is None:
            return self.attn(self.attn_norm(x), rope, cache, layer)
        if cache is None and not self.attn.sparse_block_size:  # attention over the (B, k) routed sequence
            cos, sin = rope[0][route.index], rope[1][route.index]  # (B, k, dr) their own positions
            key_valid = None if route.all_valid else route.valid  # hide padding
            return self.attn(self.attn_norm(x_in), (cos, sin), None, layer, key_valid=key_valid)
        # Every token writes its latent (to the cache), visible only if it entered.
        return self.attn(self.attn_norm(x), rope, cache, layer, route.index, route.entered(x.shape[1]))

    def _ffn(
        self, h: torch.Tensor, with_stats: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """Normalised states (B, n, D) -> (FFN or MoE output (B, n, D), MoE aux loss or None, MoE stats)."""
        if isinstance(self.ffn, MoE):
            return self.ffn(h, with_stats)
        return self.ffn(h), None, {}
