"""Dense causal attention: every path (full, chunk after a cache, one decoding query, hidden keys) against an
explicit softmax reference."""

import math

import pytest
import torch

from worldmodel.model.dense_attention import dense_causal_attention


def _reference(q, k, v, q_offset, key_valid=None):
    """softmax(q k^T / sqrt(d)) v with query i at position q_offset + i seeing keys j <= q_offset + i (and, with
    key_valid, only visible keys besides its own)."""
    m, s = q.shape[2], k.shape[2]
    pos = torch.arange(q_offset, q_offset + m)[:, None]
    j = torch.arange(s)[None, :]
    mask = (j <= pos)[None]  # (1, M, S)
    if key_valid is not None:
        mask = mask & (key_valid[:, None, :] | (j == pos))  # (B, M, S)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask[:, None], float("-inf")).softmax(-1) @ v


@pytest.mark.parametrize("n_keys,n_queries", [(40, 40), (40, 7), (40, 1), (3, 3)])
@pytest.mark.parametrize("hidden", [False, True])
def test_matches_the_softmax_reference(n_keys, n_queries, hidden):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, n_queries, 16, generator=g)
    k = torch.randn(2, 3, n_keys, 16, generator=g)
    v = torch.randn(2, 3, n_keys, 8, generator=g)  # narrower values, as in MLA (the padded fused path)
    valid = torch.rand(2, n_keys, generator=g) < 0.6 if hidden else None
    offset = n_keys - n_queries
    out = dense_causal_attention(q, k, v, offset, key_valid=valid)
    assert out.shape == (2, 3, n_queries, 8)
    torch.testing.assert_close(out, _reference(q, k, v, offset, valid), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("hidden", [False, True])
def test_routed_queries_at_per_row_positions_equal_those_rows_of_the_full_product(hidden):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(2, 3, 40, 16, generator=g)
    k = torch.randn(2, 3, 40, 16, generator=g)
    v = torch.randn(2, 3, 40, 8, generator=g)
    valid = torch.rand(2, 40, generator=g) < 0.6 if hidden else None
    picked = torch.stack([torch.randperm(40, generator=g)[:33].sort().values for _ in range(2)])  # (B, 33)
    rows = picked[:, None, :, None]
    out = dense_causal_attention(q.gather(2, rows.expand(-1, 3, -1, 16)), k, v, key_valid=valid, query_pos=picked)
    full = _reference(q, k, v, 0, valid)
    torch.testing.assert_close(out, full.gather(2, rows.expand(-1, 3, -1, 8)), atol=1e-5, rtol=1e-5)
