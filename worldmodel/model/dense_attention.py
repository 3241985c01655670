"""Dense causal softmax attention: the product that dense MLA runs, and the reference for block-sparse attention.

`dense_causal_attention` is the one entry point: queries are the last positions of the key sequence (bottom-right
aligned, as in a KV-cached decoding step) or sit at given per-row positions, and `key_valid` hides keys
(Mixture-of-Depths: tokens that skipped a layer). `sdpa` and `visible_keys` are its two building blocks, also used
by the block-sparse path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MIN_QUERIES = 32  # see sdpa


def sdpa(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, scale: float | None
) -> torch.Tensor:
    """``scaled_dot_product_attention`` (causal when ``mask`` is None) with values zero-padded to the query/key
    head dim for ``PAD_MIN_QUERIES`` queries or more: MLA's value heads are narrower than its query/key heads, and
    the fused (flash) kernels need equal widths, otherwise a slower unfused path runs (about 20 % slower on CPU at
    320 tokens; at 16K tokens it materialises the whole score matrix). Padding copies every value, so a few
    decoding queries against a long cache skip it."""
    dv = v.shape[-1]
    pad = q.shape[2] >= PAD_MIN_QUERIES and dv < q.shape[-1]
    if pad:
        v = F.pad(v, (0, q.shape[-1] - dv))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, scale=scale)
    return out[..., :dv] if pad else out


def visible_keys(q_pos: torch.Tensor, n_keys: int, key_valid: torch.Tensor | None) -> torch.Tensor:
    """Boolean attention mask `(B or 1, 1, M, S)`: the query at position `q_pos` ((M,) or per row (B, M)) sees key
    `j` iff `j <= q_pos` and (`key_valid[:, j]` or `j == q_pos`); every query sees at least its own key."""
    j = torch.arange(n_keys, device=q_pos.device)
    q_pos = q_pos if q_pos.dim() == 2 else q_pos[None]  # (B or 1, M)
    mask = j <= q_pos[..., None]  # (B or 1, M, S)
    if key_valid is not None:
        mask = mask & (key_valid[:, None, :] | (j == q_pos[..., None]))
    return mask[:, None]


def dense_causal_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_offset: int = 0,
    scale: float | None = None,
    key_valid: torch.Tensor | None = None,
    query_pos: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal softmax attention; query i sits at sequence position `q_offset + i` and sees keys 0..q_offset+i.

    q (B, H, M, dk), k (B, H, S, dk), v (B, H, S, dv) with S = q_offset + M  ->  (B, H, M, dv). `scale` defaults to
    `1 / sqrt(dk)`; `key_valid (B, S)` hides the keys marked False from every query but their own; `query_pos
    (B, M)` places the queries per row instead (Mixture-of-Depths: only the routed tokens query, `q_offset` unused).
    """
    m, s = q.shape[2], k.shape[2]
    if query_pos is None and key_valid is None and q_offset == 0 and m == s:
        return sdpa(q, k, v, None, scale)
    if query_pos is None and key_valid is None and m == 1:  # one decoding query sees every key
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if query_pos is None:
        query_pos = torch.arange(q_offset, q_offset + m, device=q.device)
    return sdpa(q, k, v, visible_keys(query_pos, s, key_valid), scale)  # (B, H, M, dv)
