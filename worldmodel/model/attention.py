"""Multi-head latent attention (MLA, DeepSeek-V2/V3) with a decoupled, shared RoPE key.

Keys and values are compressed into one low-rank latent `c_kv` per token (RMSNorm-ed); a separate small key
`k_rope` carries the position (3D RoPE) and is shared by all heads. The KV cache stores only `c_kv` and
`k_rope`: `kv_lora_rank + qk_rope_head_dim` values per token per layer instead of `2 * n_heads * head_dim`.
Without a cache (training, prefill-free scoring) the latents are expanded back to per-head keys and values
(`wkv_b`). With a cache (decoding) attention runs in the latent space instead (DeepSeek-V3's "absorb" form):
the key half of `wkv_b` is folded into the query and its value half applied after the product, so a decoding
step costs O(S * r) on the cache rather than expanding all S cached latents per head. Both forms give the same
result up to float rounding.

The dense attention product is `dense_causal_attention` (dense_attention.py), held in the `attention_product`
attribute so that a benchmark can wrap it to capture each layer's q, k, v. With `sparse_block_size > 0` it is
block-sparse instead (`sparse_attention.py`, blocks starting at `sparse_block_offset + i * sparse_block_size`);
the key blocks chosen per query block are kept in the KV cache (`SparseKVCache.selections`) so that cached
decoding makes the same choice.
`query_index` (Mixture-of-Depths) computes the output only for some tokens while every token writes its K/V.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .cache import KVCache, SparseKVCache
from .dense_attention import dense_causal_attention
from .rope import apply_rope
from .sparse_attention import block_sparse_attention

AttentionProduct = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, float], torch.Tensor]


class MultiHeadLatentAttention(nn.Module):
    """Causal self-attention whose keys/values pass through a cached low-rank latent (see module docstring)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        kv_lora_rank: int,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        q_lora_rank: int = 0,
        norm_eps: float = 1e-6,
        sparse_block_size: int = 0,
        sparse_top_k: int = 0,
        sparse_block_offset: int = 0,
    ) -> None:
        super().__init__()
        self.sparse_block_size, self.sparse_top_k = sparse_block_size, sparse_top_k  # block size 0: dense
        self.sparse_block_offset = sparse_block_offset  # blocks start at offset + i * block_size
        self.n_heads = n_heads
        self.kv_lora_rank = kv_lora_rank
        self.qk_nope_head_dim = qk_nope_head_dim
        self.qk_rope_head_dim = qk_rope_head_dim
        self.v_head_dim = v_head_dim
        qk_head_dim = qk_nope_head_dim + qk_rope_head_dim
        self.scale = 1.0 / math.sqrt(qk_head_dim)
        if q_lora_rank > 0:  # low-rank query as in DeepSeek-V3 (saves activations, not cache)
            self.wq = nn.Sequential(
                nn.Linear(d_model, q_lora_rank, bias=False),
                nn.RMSNorm(q_lora_rank, eps=norm_eps),
                nn.Linear(q_lora_rank, n_heads * qk_head_dim, bias=False),
            )
        else:
            self.wq = nn.Linear(d_model, n_heads * qk_head_dim, bias=False)
        self.wkv_a = nn.Linear(d_model, kv_lora_rank + qk_rope_head_dim, bias=False)
        self.kv_norm = nn.RMSNorm(kv_lora_rank, eps=norm_eps)
        self.wkv_b = nn.Linear(kv_lora_rank, n_heads * (qk_nope_head_dim + v_head_dim), bias=False)
        self.wo = nn.Linear(n_heads * v_head_dim, d_model, bias=False)
        self.attention_product: AttentionProduct = dense_causal_attention

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cache: KVCache | None = None,
        layer: int = 0,
        query_index: torch.Tensor | None = None,
        key_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, N, D), rope = (cos, sin) each (N, qk_rope_head_dim), or per row (B, N, qk_rope_head_dim), for
        these tokens' positions  ->  (B, N, D).

        Mixture-of-Depths: with `query_index (B, k)` (positions within x) only those tokens get an output
        (B, k, D); `key_valid (B, N)` hides the keys of the tokens marked False from every other query (they are
        still written to the cache, marked hidden).
        """
        bsz, n, _ = x.shape
        cos, sin = rope
        subset = query_index is not None and not self.sparse_block_size  # sparse needs every block's anchor query
        if subset:
            x_q = x.gather(1, query_index[..., None].expand(-1, -1, x.shape[-1]))  # (B, k, D)
            cos_q, sin_q = cos[query_index][:, None], sin[query_index][:, None]  # (B, 1, k, dr)
        elif cos.dim() == 3:  # per-row positions
            x_q, cos_q, sin_q = x, cos[:, None], sin[:, None]  # (B, 1, N, dr)
        else:
            x_q, cos_q, sin_q = x, cos, sin
        q = self.wq(x_q).view(bsz, x_q.shape[1], self.n_heads, -1).transpose(1, 2)  # (B, H, N or k, dn + dr)
        q_nope, q_rope = q.split([self.qk_nope_head_dim, self.qk_rope_head_dim], dim=-1)
        q_rope = apply_rope(q_rope, cos_q, sin_q)

        kv = self.wkv_a(x)  # (B, N, r + dr)
        latent, k_rope = kv.split([self.kv_lora_rank, self.qk_rope_head_dim], dim=-1)
        latent = self.kv_norm(latent)  # (B, N, r)
        k_rope = apply_rope(k_rope, cos, sin)  # (B, N, dr), one key for all heads
        offset = 0
        if cache is not None:
            offset = cache.length
            latent, k_rope = cache.update(layer, latent, k_rope)  # (B, S, r), (B, S, dr)
            if key_valid is not None:
                key_valid = cache.update_valid(layer, key_valid)  # (B, S)
            if not self.sparse_block_size and not subset and key_valid is None:
                out = self._absorbed(q_nope, q_rope, latent, k_rope, offset)  # (B, H, N, dv)
                return self.wo(out.transpose(1, 2).reshape(bsz, n, -1))  # (B, N, D)
        s = latent.shape[1]

        kv = self.wkv_b(latent).view(bsz, s, self.n_heads, -1).transpose(1, 2)  # (B, H, S, dn + dv)
        k_nope, v = kv.split([self.qk_nope_head_dim, self.v_head_dim], dim=-1)
        k = torch.cat([k_nope, k_rope[:, None].expand(-1, self.n_heads, -1, -1)], dim=-1)  # (B, H, S, dn + dr)
        q = torch.cat([q_nope, q_rope], dim=-1)  # (B, H, N, dn + dr)

        if self.sparse_block_size:
            if cache is not None and not isinstance(cache, SparseKVCache):
                raise ValueError("Block-sparse attention needs a SparseKVCache (use WorldModel.new_cache).")
            selection = cache.selections[layer] if cache is not None else None
            out, selection = block_sparse_attention(
                q, k, v, self.sparse_block_size, self.sparse_top_k, q_offset=offset, selection=selection,
                scale=self.scale, key_valid=key_valid, block_offset=self.sparse_block_offset,
            )  # (B, H, N, dv)
            if cache is not None:
                cache.selections[layer] = selection
            if query_index is not None:
                out = out.gather(2, query_index[:, None, :, None].expand(-1, self.n_heads, -1, out.shape[-1]))
        elif subset or key_valid is not None:
            q_pos = offset + query_index if subset else None  # (B, k): the routed tokens' positions
            out = dense_causal_attention(q, k, v, offset, self.scale, key_valid, q_pos)  # (B, H, k or N, dv)
        else:
            out = self.attention_product(q, k, v, offset, self.scale)  # (B, H, N, dv)
        return self.wo(out.transpose(1, 2).reshape(bsz, out.shape[2], -1))  # (B, N or k, D)

    def _absorbed(
        self, q_nope: torch.Tensor, q_rope: torch.Tensor, latent: torch.Tensor, k_rope: torch.Tensor, offset: int
    ) -> torch.Tensor:
        """Causal attention in the latent space: q_nope (B, H, N, dn), q_rope (B, H, N, dr), cached latent
        (B, S, r) and k_rope (B, S, dr) -> (B, H, N, dv). `q_nope . (W_uk c) = (q_nope W_uk) . c` and
        `W_uv (sum_j p_j c_j) = sum_j p_j (W_uv c_j)`, so keys and values are the latents themselves, shared by
        all heads."""
        w = self.wkv_b.weight.view(self.n_heads, self.qk_nope_head_dim + self.v_head_dim, self.kv_lora_rank)
        w_uk, w_uv = w.split([self.qk_nope_head_dim, self.v_head_dim], dim=1)  # (H, dn, r), (H, dv, r)
        q = torch.cat([q_nope @ w_uk, q_rope], dim=-1)  # (B, H, N, r + dr)
        k = torch.cat([latent, k_rope], dim=-1)[:, None].expand(-1, self.n_heads, -1, -1)  # (B, H, S, r + dr)
        v = latent[:, None].expand(-1, self.n_heads, -1, -1)  # (B, H, S, r)
        out = dense_causal_attention(q, k, v, offset, self.scale)  # (B, H, N, r)
        return out @ w_uv.transpose(1, 2)  # (B, H, N, dv)
