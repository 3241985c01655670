"""Block-sparse causal attention: dense equality, the selected pattern, causality, cached decoding, flex."""

import math

import pytest
import torch
import torch.nn.functional as F

from worldmodel.model.dense_attention import dense_causal_attention
from worldmodel.model.sparse_attention import block_means, block_sparse_attention, crop_selection


def _qkv(B=2, H=3, N=100, D=16, Dv=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, N, D, generator=g) for _ in range(2))
    v = torch.randn(B, H, N, Dv or D, generator=g)
    return q, k, v


def _pattern_mask(table: torch.Tensor, N: int, block_size: int, block_offset: int = 0) -> torch.Tensor:
    """Dense (B, H, N, N) mask of what each query may see: first block, selected blocks, causal local block;
    block boundaries at ``block_offset + i * block_size``."""
    B, H, n_b, _ = table.shape
    allowed = torch.zeros(B, H, n_b, n_b + 1, dtype=torch.bool)
    allowed.scatter_(-1, table.clamp(min=-1) % (n_b + 1), True)  # -1 lands in the spare last column
    allowed = allowed[..., :n_b]
    allowed[..., 0] = True
    allowed |= torch.eye(n_b, dtype=torch.bool)
    block = (torch.arange(N) + (-block_offset) % block_size) // block_size
    mask = allowed[:, :, block][:, :, :, block]  # (B, H, N, N)
    return mask & torch.ones(N, N, dtype=torch.bool).tril()


@pytest.mark.parametrize("block_offset", [0, 1, 5])
@pytest.mark.parametrize("N,block_size,Dv", [(100, 8, 16), (64, 16, 24), (33, 32, 16), (5, 8, 16)])
def test_equals_dense_when_every_block_is_kept(N, block_size, Dv, block_offset):
    q, k, v = _qkv(N=N, Dv=Dv)
    n_blocks = math.ceil((N + (-block_offset) % block_size) / block_size)
    top_k = max(0, n_blocks - 2)
    out, table = block_sparse_attention(q, k, v, block_size, top_k, block_offset=block_offset)
    torch.testing.assert_close(out, dense_causal_attention(q, k, v), atol=1e-5, rtol=1e-5)
    assert table.shape == (2, 3, n_blocks, top_k)


@pytest.mark.parametrize("block_offset", [0, 1])
@pytest.mark.parametrize("backend", ["gather", "flex"])
def test_hidden_keys_match_the_masked_dense_reference(backend, block_offset):
    """Mixture-of-Depths hides skipped tokens' keys: every block kept equals dense attention with those keys
    masked (each query still sees its own key); block means leave hidden keys out."""
    q, k, v = _qkv(N=96)
    valid = torch.rand(2, 96, generator=torch.Generator().manual_seed(1)) < 0.7
    out, _ = block_sparse_attention(q, k, v, 16, 5, key_valid=valid, backend=backend, block_offset=block_offset)
    ref = dense_causal_attention(q, k, v, key_valid=valid)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    own = torch.eye(96, dtype=torch.bool)
    mask = torch.ones(96, 96, dtype=torch.bool).tril() & (valid[:, None, None, :] | own)
    torch.testing.assert_close(ref, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-6, rtol=1e-6)
    means = block_means(k, 16, valid)
    expect = (k[:, :, 32:48] * valid[:, None, 32:48, None]).sum(2) / valid[:, None, 32:48].sum(-1, keepdim=True)
    torch.testing.assert_close(means[:, :, 2], expect)


@pytest.mark.parametrize("block_offset", [0, 1, 5])
def test_matches_masked_dense_reference_and_its_gradients(block_offset):
    q, k, v = _qkv(N=96)
    for t in (q, k, v):
        t.requires_grad_(True)
    out, table = block_sparse_attention(q, k, v, 8, 2, block_offset=block_offset)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=_pattern_mask(table, 96, 8, block_offset))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # Each query block keeps top_k blocks (fewer only when it has fewer candidates), distinct and earlier.
    for i in range(table.shape[2]):
        row = table[:, :, i]
        assert ((row >= 1) & (row < i) | (row == -1)).all()
        assert ((row >= 0).sum(-1) == min(2, max(i - 1, 0))).all()


def test_unselected_blocks_are_never_touched():
    q, k, v = _qkv(B=1, H=1, N=128)
    out, table = block_sparse_attention(q, k, v, 16, 1)
    kept = {0, 7, int(table[0, 0, 7, 0])}  # first, local and the one selected block of the last query block
    dropped = [b for b in range(8) if b not in kept]
    k_bad, v_bad = k.clone(), v.clone()
    for b in dropped:
        k_bad[:, :, b * 16 : (b + 1) * 16] = float("nan")
        v_bad[:, :, b * 16 : (b + 1) * 16] = float("nan")
    # Last queries from the stored table; a masked dense product would turn NaN here.
    tail, _ = block_sparse_attention(q[:, :, 113:], k_bad, v_bad, 16, 1, q_offset=113, selection=table)
    torch.testing.assert_close(tail, out[:, :, 113:])


@pytest.mark.parametrize("block_offset", [0, 1])
def test_causal(block_offset):
    q, k, v = _qkv(N=90)
    out, _ = block_sparse_attention(q, k, v, 8, 2, block_offset=block_offset)
    for p in (1, 2, 8, 9, 45, 89):
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        for t in (q2, k2, v2):
            t[:, :, p:] = torch.randn_like(t[:, :, p:]) * 5
        out2, _ = block_sparse_attention(q2, k2, v2, 8, 2, block_offset=block_offset)
        torch.testing.assert_close(out2[:, :, :p], out[:, :, :p], atol=0, rtol=0)


@pytest.mark.parametrize("block_offset", [0, 1, 3])
def test_cached_decoding_equals_full_forward(block_offset):
    q, k, v = _qkv(N=75, Dv=8)
    full, table = block_sparse_attention(q, k, v, 8, 2, block_offset=block_offset)
    steps, selection = [], None
    for p in range(75):
        o, selection = block_sparse_attention(
            q[:, :, p : p + 1], k[:, :, : p + 1], v[:, :, : p + 1], 8, 2, q_offset=p, selection=selection,
            block_offset=block_offset,
        )
        steps.append(o)
    torch.testing.assert_close(torch.cat(steps, dim=2), full, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(selection, table)
    # A verify chunk after rolling the cache back (speculative decoding), crossing block boundaries.
    chunk, _ = block_sparse_attention(q[:, :, 30:], k, v, 8, 2, q_offset=30, block_offset=block_offset,
                                      selection=crop_selection(table, 30, 8, block_offset))
    torch.testing.assert_close(chunk, full[:, :, 30:], atol=1e-6, rtol=1e-5)


def test_bad_inputs_raise_clear_errors():
    q, k, v = _qkv(N=40)
    with pytest.raises(ValueError, match="selection table"):
        block_sparse_attention(q[:, :, 20:], k, v, 8, 2, q_offset=20)
    with pytest.raises(ValueError, match="last 40 positions"):
        block_sparse_attention(q, k[:, :, :30], v[:, :, :30], 8, 2)
    with pytest.raises(ValueError, match="block_size"):
        block_sparse_attention(q, k, v, 0, 2)
    with pytest.raises(ValueError, match="multiple of 16"):
        block_sparse_attention(q, k, v, 8, 2, backend="flex")
    with pytest.raises(ValueError, match="backend"):
        block_sparse_attention(q, k, v, 8, 2, backend="triton")
    with pytest.raises(ValueError, match="block_offset"):
        block_sparse_attention(q, k, v, 8, 2, block_offset=9)


@pytest.mark.slow
@pytest.mark.parametrize("block_offset", [0, 1])
def test_flex_backend_matches_gather(block_offset):
    q, k, v = _qkv(N=200)
    out, _ = block_sparse_attention(q, k, v, 16, 3, block_offset=block_offset)
    flex, _ = block_sparse_attention(q, k, v, 16, 3, backend="flex", block_offset=block_offset)
    torch.testing.assert_close(flex, out, atol=1e-5, rtol=1e-5)


# --- the option inside WorldModel ------------------------------------------------------------------------------

TINY_MODEL = dict(
    codebook_size=64, latent_frames=3, latent_height=4, latent_width=4, max_text_len=32, d_model=64, n_layers=2,
    n_heads=2, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=12, v_head_dim=16, dense_hidden=128,
    moe_experts=8, moe_expert_hidden=32, moe_top_k=2, moe_groups=4, moe_topk_groups=2, text_d_model=32,
    text_layers=1, text_heads=2,
)  # fmt: skip


def _model(**overrides):
    from worldmodel.model import WorldModel

    torch.manual_seed(0)
    return WorldModel(**{**TINY_MODEL, **overrides}).eval()


def _ids(model, batch=2):
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.codebook_size, (batch, model.max_seq_len), generator=generator)
    ids[:, 0] = model.bos_token_id
    return ids


def test_world_model_block_sparse_equals_dense_when_every_block_is_kept():
    dense = _model()
    sparse = _model(attention_impl="block_sparse", sparse_block_size=4, sparse_top_k=20)
    sparse.load_state_dict(dense.state_dict())
    ids = _ids(dense)
    with torch.no_grad():
        torch.testing.assert_close(sparse(ids).logits, dense(ids).logits, atol=1e-5, rtol=1e-5)


def test_world_model_blocks_are_latent_frames_after_bos():
    """BOS is block 0 on its own, so blocks of h * w codes are latent frames: with top_k 0 the first code of frame 1
    sees BOS and itself only (frame 0, a whole earlier block, is skipped), while the last code of frame 0 sees
    all of frame 0 (its local block)."""
    model = _model(attention_impl="block_sparse", sparse_block_size=16, sparse_top_k=0, n_layers=1)
    ids = _ids(model)
    changed = ids.clone()
    changed[:, 1:16] = (changed[:, 1:16] + 7) % model.config.codebook_size  # frame 0 but its last code
    with torch.no_grad():
        before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(after[:, 17], before[:, 17], atol=0, rtol=0)  # first code of frame 1
    assert not torch.allclose(after[:, 16], before[:, 16])  # last code of frame 0


def test_world_model_block_sparse_is_causal_and_cached_decoding_equals_full_forward():
    model = _model(attention_impl="block_sparse", sparse_block_size=4, sparse_top_k=2)
    ids = _ids(model)
    with torch.no_grad():
        full = model(ids).logits
        for j in (3, 4, 22):
            changed = ids.clone()
            changed[:, j:] = (changed[:, j:] + 7) % model.config.codebook_size
            assert torch.equal(model(changed).logits[:, :j], full[:, :j])
        cache = model.new_cache(2)
        steps = [model(ids[:, :6], cache=cache).logits]
        steps += [model(ids[:, i : i + 1], cache=cache).logits for i in range(6, ids.shape[1])]
        cache.crop(17)  # roll back across a block boundary and redo a chunk
        redo = model(ids[:, 17:30], cache=cache).logits
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(redo, full[:, 17:30], atol=1e-4, rtol=1e-4)
