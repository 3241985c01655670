"""Mixture-of-Depths routing: skipped share, residual pass-through, causality in training and decoding,
cached decoding, predictor."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from worldmodel.model.depth_router import DepthRouter, Route


class ToyBlock(nn.Module):
    """Pre-norm attention + MLP that follows the routing KV rule: every token writes K/V with a visibility flag,
    routed tokens query and see only routed keys (and their own)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor, route: Route, cache: dict | None = None) -> torch.Tensor:
        offset = 0 if cache is None or "k" not in cache else cache["k"].shape[1]
        h = self.norm1(x)
        k, v = self.kv(h).chunk(2, dim=-1)  # (B, N, D) for every token
        valid = route.entered(x.shape[1])  # (B, N)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 1), torch.cat([cache["v"], v], 1)
                valid = torch.cat([cache["valid"], valid], 1)
            cache["k"], cache["v"], cache["valid"] = k, v, valid
        q = self.q(route.gather(h))  # (B, k, D) routed tokens only
        q_pos = (route.index + offset)[:, :, None]
        keys = torch.arange(k.shape[1])[None, None, :]
        mask = (q_pos >= keys) & (valid[:, None, :] | (q_pos == keys))
        y = self.out(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
        return y + self.mlp(self.norm2(route.gather(x) + y))


def _setup(dim=16, rho=0.3, seed=0):
    torch.manual_seed(seed)
    return DepthRouter(dim, rho=rho), ToyBlock(dim)


def _apply(router: DepthRouter, block: ToyBlock, x: torch.Tensor, cache: dict | None = None):
    """One routed block, as Block runs it: route, run the block on the routed tokens, add their update back."""
    route, loss = router(x)
    return router.add(x, route, block(x, route, cache)), route, loss


@pytest.mark.parametrize("rho,N", [(0.3, 50), (0.3, 7), (0.5, 64), (0.0, 10), (0.875, 40)])
def test_running_threshold_skips_the_configured_share(rho, N):
    router, block = _setup(rho=rho)
    x = torch.randn(3, N, 16)
    router.train()
    _apply(router, block, x)  # records this batch's quantile; the threshold moves only in update_threshold()
    assert router.threshold.item() == 0.0
    router.update_threshold()
    out, route, loss = _apply(router, block, x)
    entered = route.entered(N)
    assert abs((~entered).float().mean().item() - rho) <= 1 / (3 * N) + 1e-6
    torch.testing.assert_close(out[~entered], x[~entered], atol=0, rtol=0)  # skipped tokens ride the residual
    assert (out[entered] != x[entered]).any(dim=-1).all()
    index, valid = route.index, route.valid
    assert ((index.diff(dim=-1) > 0) | ~valid[:, 1:]).all() and loss.item() > 0  # entering tokens in order


def test_router_learns_through_the_output_scale():
    router, block = _setup()
    router.predictor[2].bias.data.fill_(0.3)  # a mix of entering and skipped tokens
    out, route, loss = _apply(router, block, torch.randn(2, 20, 16))
    assert route.valid.any() and not route.entered(20).all()
    out.square().mean().backward()
    assert router.router.weight.grad.abs().sum() > 0
    assert router.predictor[0].weight.grad is None  # the predictor learns only from its own loss
    loss.backward()
    assert router.predictor[0].weight.grad.abs().sum() > 0


def _run_predictor(router, block, x, chunks):
    """Decode ``x`` in the given chunk sizes through one cache; returns outputs and the entered mask."""
    cache, outs, entered = {}, [], []
    start = 0
    for n in chunks:
        out, route, _ = _apply(router, block, x[:, start : start + n], cache)
        outs.append(out)
        entered.append(route.entered(n))
        start += n
    return torch.cat(outs, 1), torch.cat(entered, 1)


@pytest.mark.parametrize("training", [False, True])
def test_routing_is_causal_and_cached_decoding_equals_full_forward(training):
    router, block = _setup()
    router.train(training)
    with torch.no_grad():
        router.predictor[2].bias.fill_(0.3)  # a mix of entering and skipped tokens
        x = torch.randn(3, 30, 16)
        full, entered = _run_predictor(router, block, x, [30])
        assert entered.any() and (~entered).any()
        assert (entered.sum(-1) != entered.sum(-1)[0]).any()  # rows enter different numbers of tokens
        step, entered_step = _run_predictor(router, block, x, [1] * 30)
        torch.testing.assert_close(step, full, atol=1e-5, rtol=1e-5)
        assert torch.equal(entered_step, entered)
        chunked, _ = _run_predictor(router, block, x, [11, 3, 16])
        torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
        x2 = x.clone()
        x2[:, 17:] = torch.randn_like(x2[:, 17:])
        full2, entered2 = _run_predictor(router, block, x2, [30])
        torch.testing.assert_close(full2[:, :17], full[:, :17], atol=0, rtol=0)
        assert torch.equal(entered2[:, :17], entered[:, :17]) and not torch.equal(entered2, entered)


@pytest.mark.slow
def test_predictor_learns_the_topk_decisions():
    torch.manual_seed(0)
    router = DepthRouter(16, rho=0.3)
    opt = torch.optim.Adam(router.predictor.parameters(), lr=3e-2)
    for _ in range(120):
        _, loss = router(torch.randn(4, 40, 16))
        opt.zero_grad()
        loss.backward()
        opt.step()
        router.update_threshold()
    x = torch.randn(16, 40, 16)
    with torch.no_grad():
        top = router.router(x).squeeze(-1).topk(router.capacity(40), dim=-1).indices  # (B, 28) the target
        target = torch.zeros(16, 40, dtype=torch.bool).scatter(1, top, True)
        guess = router.eval()(x)[0].entered(40)
    agreement = (target == guess).float().mean().item()
    assert agreement > 0.9, agreement
    skipped = (~guess).float().mean().item()  # the running-quantile threshold keeps the share near rho
    assert abs(skipped - 0.3) < 0.1, skipped
    assert router.threshold.item() != 0.0


def test_bad_config_raises():
    with pytest.raises(ValueError, match="rho"):
        DepthRouter(8, rho=1.0)


def test_hidden_keys_compacted_attention_equals_masked_attention():
    """Training attends over the compacted routed tokens; decoding over all positions with skipped keys hidden."""
    from worldmodel.model.attention import MultiHeadLatentAttention
    from worldmodel.model.rope import VideoRoPE

    torch.manual_seed(0)
    attn = MultiHeadLatentAttention(32, 2, 16, 8, 6, 8)
    x = torch.randn(2, 20, 32)
    cos, sin = VideoRoPE(6, 2, 2)(0, 20)
    index = torch.stack([torch.randperm(20)[:13].sort().values for _ in range(2)])  # (B, k)
    entered = torch.zeros(2, 20, dtype=torch.bool).scatter(1, index, True)
    compact = attn(x.gather(1, index[..., None].expand(-1, -1, 32)), (cos[index], sin[index]))
    masked = attn(x, (cos, sin), query_index=index, key_valid=entered)
    torch.testing.assert_close(compact, masked, atol=1e-5, rtol=1e-5)
    # A skipped token's state changes no routed token's output; changing a routed token's state does.
    skipped = int((~entered[0]).nonzero()[0])
    x2 = x.clone()
    x2[0, skipped] += 1.0
    torch.testing.assert_close(attn(x2, (cos, sin), query_index=index, key_valid=entered), masked, atol=0, rtol=0)
    x2[0, int(index[0, 0])] += 1.0
    assert not torch.allclose(attn(x2, (cos, sin), query_index=index, key_valid=entered)[0, 1:], masked[0, 1:])


# --- Mixture-of-Depths inside WorldModel (with block-sparse attention too) -------------------------------------

TINY_MODEL = dict(
    codebook_size=64, latent_frames=3, latent_height=4, latent_width=4, max_text_len=32, d_model=64, n_layers=3,
    n_heads=2, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=12, v_head_dim=16, dense_hidden=128,
    moe_experts=8, moe_expert_hidden=32, moe_top_k=2, moe_groups=4, moe_topk_groups=2, text_d_model=32,
    text_layers=1, text_heads=2, mod_layers=[1, 2],
)  # fmt: skip


def _model(**overrides):
    from worldmodel.model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(**{**TINY_MODEL, **overrides}).eval()
    for block in model.blocks:
        if block.depth_router is not None:
            for layer in block.depth_router.predictor[::2]:  # a mix of entering and skipped tokens
                nn.init.normal_(layer.weight, std=1.0)
        if block.bridge is not None:
            nn.init.constant_(block.bridge.gate, 0.7)
    return model


def _ids_and_text(model):
    from worldmodel.tokenizers.text import ByteTokenizer

    ids = torch.randint(0, 64, (2, model.max_seq_len), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = model.bos_token_id
    text = model.encode_text(*ByteTokenizer(32).encode(["a red ball falls", ""]))
    return ids, text


@pytest.mark.parametrize("rho", [0.3, 0.5])
def test_world_model_training_skips_the_configured_share(rho):
    model = _model(mod_rho=rho).train()
    ids, text = _ids_and_text(model)
    for _ in range(3):  # the thresholds follow the predictors' logit quantiles, one update per optimiser step
        model(ids, text)
        model.update_router_biases()
    out = model(ids, text)
    for layer in (1, 2):
        assert out.stats[f"layer{layer}/mod_skipped_share"].item() == pytest.approx(rho, abs=0.05)
    assert "layer0/mod_skipped_share" not in out.stats
    out.logits.square().mean().add(out.aux_loss).backward()  # routers and predictors both learn
    assert model.blocks[1].depth_router.router.weight.grad.abs().sum() > 0
    assert model.blocks[1].depth_router.predictor[0].weight.grad.abs().sum() > 0


def _decisions(model, ids, text):
    """(logits, {layer: entered (B, N)}) of one forward, the routing decisions read off each depth router."""
    seen = {}
    hooks = [block.depth_router.register_forward_hook(lambda _m, _a, out, i=i: seen.update({i: out[0]}))
             for i, block in enumerate(model.blocks) if block.depth_router is not None]  # fmt: skip
    try:
        logits = model(ids, text).logits
    finally:
        for hook in hooks:
            hook.remove()
    return logits, {i: route.entered(ids.shape[1]) for i, route in seen.items()}


def test_world_model_training_forward_is_causal():
    """In train mode (routing on, thresholds set by training steps) a later token changes neither the logits nor
    the routing decisions at earlier positions: whether token p enters a layer depends on tokens <= p only."""
    model = _model(mod_rho=0.3).train()
    ids, text = _ids_and_text(model)
    model(ids, text)
    model.update_router_biases()
    with torch.no_grad():
        logits, entered = _decisions(model, ids, text)
        assert all(e.any() and (~e).any() for e in entered.values())
        for j in (5, 30):
            changed = ids.clone()
            changed[:, j:] = (changed[:, j:] + 7) % 64
            logits2, entered2 = _decisions(model, changed, text)
            torch.testing.assert_close(logits2[:, :j], logits[:, :j], atol=1e-5, rtol=1e-5)
            assert not torch.allclose(logits2[:, j:], logits[:, j:])
            for layer in (1, 2):
                assert torch.equal(entered2[layer][:, :j], entered[layer][:, :j])
            assert any(not torch.equal(entered2[i], entered[i]) for i in (1, 2))  # later decisions did change


def test_calibrated_predictor_skips_the_configured_share():
    model = _model(mod_rho=0.3)
    for block in model.blocks[1:]:
        block.depth_router.threshold.fill_(-5.0)  # a stale threshold: (almost) every token enters
    ids, text = _ids_and_text(model)
    with torch.no_grad():
        assert model(ids, text).stats["layer1/mod_skipped_share"].item() < 0.1
        thresholds = model.calibrate_depth_routers(ids, text)
        stats = model(ids, text).stats
    assert sorted(thresholds) == [1, 2] and not model.training
    for layer in (1, 2):
        assert stats[f"layer{layer}/mod_skipped_share"].item() == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize("sparse", [False, True])
def test_world_model_routed_layers_are_causal_and_cached_decoding_equals_full_forward(sparse):
    extra = dict(attention_impl="block_sparse", sparse_block_size=4, sparse_top_k=2) if sparse else {}
    model = _model(**extra)
    ids, text = _ids_and_text(model)
    with torch.no_grad():
        out = model(ids, text)
        full = out.logits
        share = out.stats["layer1/mod_skipped_share"].item()
        assert 0 < share < 1
        for j in (5, 30):
            changed = ids.clone()
            changed[:, j:] = (changed[:, j:] + 7) % 64
            torch.testing.assert_close(model(changed, text).logits[:, :j], full[:, :j], atol=1e-5, rtol=1e-5)
        cache = model.new_cache(2)
        steps = [model(ids[:, :6], text, cache).logits]
        steps += [model(ids[:, i : i + 1], text, cache).logits for i in range(6, ids.shape[1])]
        cache.crop(17)
        redo = model(ids[:, 17:30], text, cache).logits
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(redo, full[:, 17:30], atol=1e-4, rtol=1e-4)
