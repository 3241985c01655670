"""WorldModel: causality, exact KV-cached decoding, cache contents, text bridge, save/load, clear errors."""

import pytest
import torch

from worldmodel.model import KVCache, TextContext, WorldModel
from worldmodel.model.rope import grid_positions
from worldmodel.model.text_encoder import center_states
from worldmodel.tokenizers.text import ByteTokenizer

TINY = dict(
    codebook_size=64, latent_frames=3, latent_height=4, latent_width=4, max_text_len=32, d_model=64, n_layers=3,
    n_heads=2, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=12, v_head_dim=16, dense_hidden=128,
    moe_experts=8, moe_expert_hidden=32, moe_top_k=2, moe_groups=4, moe_topk_groups=2, bridge_layers=[0, 2],
    text_d_model=32, text_layers=1, text_heads=2,
)  # fmt: skip


def make_model(**overrides) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(**{"bridge_gate_init": 0.7, **TINY, **overrides}).eval()


def sequence(model: WorldModel, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.codebook_size, (batch, model.max_seq_len), generator=g)
    ids[:, 0] = model.bos_token_id
    return ids


def text_for(model: WorldModel, prompts: list[str]) -> TextContext:
    return model.encode_text(*ByteTokenizer(model.config.max_text_len).encode(prompts))


def test_changing_token_j_changes_no_logit_before_j():
    model = make_model()
    ids, text = sequence(model), text_for(model, ["a red ball falls", "two balls collide"])
    j = 21
    changed = ids.clone()
    changed[:, j] = (changed[:, j] + 7) % model.config.codebook_size
    with torch.no_grad():
        a, b = model(ids, text).logits, model(changed, text).logits
    assert torch.equal(a[:, :j], b[:, :j])
    assert not torch.allclose(a[:, j:], b[:, j:])


def test_kv_cached_steps_equal_the_full_forward():
    model = make_model()
    ids, text = sequence(model), text_for(model, ["a red ball falls", ""])
    with torch.no_grad():
        full = model(ids, text).logits
        cache = model.new_cache(2)
        chunks = [model(ids[:, :5], text, cache).logits]  # a prompt chunk, then one token at a time
        chunks += [model(ids[:, i : i + 1], text, cache).logits for i in range(5, ids.shape[1])]
        stepped = torch.cat(chunks, dim=1)
        assert cache.length == ids.shape[1]
        cache.crop(10)  # roll back (speculative decoding) and redo a chunk
        redo = model(ids[:, 10:14], text, cache).logits
    assert torch.allclose(stepped, full, atol=1e-4)
    assert torch.allclose(redo, full[:, 10:14], atol=1e-4)


def test_cache_holds_only_the_latent_and_the_rope_key():
    model = make_model()
    cache = model.new_cache(2)
    with torch.no_grad():
        model(sequence(model)[:, :7], None, cache)
    c = model.config
    for latent, rope_key in zip(cache.latents, cache.rope_keys, strict=True):
        assert latent.shape == (2, model.max_seq_len, c.kv_lora_rank)
        assert rope_key.shape == (2, model.max_seq_len, c.qk_rope_head_dim)
    assert set(vars(cache)) == {"n_layers", "batch_size", "max_seq_len", "kv_lora_rank", "rope_dim", "length",
                                "latents", "rope_keys", "key_valid"}  # fmt: skip
    assert cache.key_valid == [None] * c.n_layers  # only Mixture-of-Depths layers keep key visibility
    assert cache.nbytes_per_token() == 4 * c.n_layers * (c.kv_lora_rank + c.qk_rope_head_dim)


def test_bos_and_video_positions_on_the_3d_grid():
    coords = grid_positions(0, 1 + 2 * 4 * 4, height=4, width=4)
    assert coords[0].tolist() == [0, 0, 0]  # BOS
    assert coords[1].tolist() == [1, 0, 0]  # first code, frame 0 -> t coordinate 1
    assert coords[1 + 4 + 2].tolist() == [1, 1, 2]
    assert coords[1 + 16].tolist() == [2, 0, 0]


def test_with_gates_at_zero_the_output_ignores_the_text():
    model = make_model(bridge_gate_init=0.0)
    ids = sequence(model)
    with torch.no_grad():
        a = model(ids, text_for(model, ["a red ball falls", "x"])).logits
        b = model(ids, text_for(model, ["something else entirely", "y y y"])).logits
        c = model(ids, None).logits
    assert torch.equal(a, b) and torch.equal(a, c)


def test_empty_prompt_is_exactly_unconditional_and_text_matters_otherwise():
    model = make_model()
    ids = sequence(model)
    text = text_for(model, ["", "a blue ball bounces"])
    block = model.blocks[0]
    x = torch.randn(2, 9, model.config.d_model)
    with torch.no_grad():
        update = block.bridge(x, text)
        assert torch.equal(update[0], torch.zeros_like(update[0])) and update[1].abs().sum() > 0
        with_text = model(ids, text).logits
        none = model(ids, None).logits
    assert torch.equal(with_text[0], none[0]) and not torch.isnan(with_text).any()
    assert not torch.allclose(with_text[1], none[1])


def test_centred_text_states_ignore_what_every_byte_shares():
    states = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    centred = center_states(states, mask)
    assert torch.allclose(centred[0].mean(0), torch.zeros(8), atol=1e-6)
    assert torch.allclose(centred[1, :3].mean(0), torch.zeros(8), atol=1e-6)
    shift = torch.randn(1, 1, 8) * 100  # a component shared by every position, as a collapsed encoder grows
    assert torch.allclose(center_states(states + shift, mask)[0], centred[0], atol=1e-4)
    assert torch.allclose(center_states(states + shift, mask)[1, :3], centred[1, :3], atol=1e-4)
    model = make_model(text_center=True)
    out = text_for(model, ["a red ball", "b"]).states
    assert model.text_encoder.center and out[1, 0].abs().max() < 1e-3  # a one-byte prompt has nothing to tell apart
    assert not torch.allclose(out[0, 2], out[0, 4])


def test_bridge_qk_norm_keys_ignore_the_scale_of_the_text_and_round_trip(tmp_path):
    model = make_model(bridge_qk_norm=True)
    bridge = model.blocks[0].bridge
    states = text_for(model, ["a red ball", "two balls collide"]).states
    keys, values = bridge.text_kv(states)
    big_keys, big_values = bridge.text_kv(states * 100)
    assert torch.allclose(keys, big_keys, atol=1e-3) and torch.allclose(values * 100, big_values, atol=1e-3)
    assert torch.allclose(keys.pow(2).mean(-1), torch.ones(keys.shape[:-1]), atol=1e-3)  # unit RMS per head
    model.save_pretrained(tmp_path / "qk")
    reloaded = WorldModel.from_pretrained(tmp_path / "qk").eval()
    assert reloaded.config.bridge_qk_norm and reloaded.blocks[0].bridge.q_norm is not None
    ids = sequence(model)
    prompts = ["a red ball", "two balls collide"]
    assert torch.equal(model(ids, text_for(model, prompts)).logits, reloaded(ids, text_for(reloaded, prompts)).logits)


def test_save_and_load_round_trip(tmp_path):
    model = make_model(moe_top_p=0.6)
    model.blocks[2].ffn.router.bias.fill_(0.25)  # the balancing bias is state too
    model.save_pretrained(tmp_path)
    loaded = WorldModel.from_pretrained(tmp_path).eval()
    assert loaded.config.moe_top_p == 0.6 and loaded.config.bridge_layers == [0, 2]
    ids, text = sequence(model), text_for(model, ["hello"] * 2)
    with torch.no_grad():
        assert torch.equal(model(ids, text).logits, loaded(ids, text_for(loaded, ["hello"] * 2)).logits)
    assert torch.equal(loaded.blocks[2].ffn.router.bias, model.blocks[2].ffn.router.bias)


def test_stats_and_aux_loss_in_training_mode():
    model = make_model().train()
    out = model(sequence(model), text_for(model, ["a", "b"]))
    assert out.logits.shape == (2, model.max_seq_len, model.config.codebook_size)
    assert out.aux_loss.requires_grad and out.aux_loss > 0
    for layer in (1, 2):  # layer 0 is dense
        assert out.stats[f"layer{layer}/load"].shape == (8,)
        assert 1.0 <= out.stats[f"layer{layer}/max_mean_load"] <= 4.0
        assert out.stats[f"layer{layer}/experts_per_token"] == 2
    assert "layer0/load" not in out.stats


def test_clear_errors_for_bad_inputs():
    model = make_model()
    ids = sequence(model)
    with pytest.raises(ValueError, match="video codes in"):
        model(ids.clone().fill_(model.bos_token_id + 1))
    with pytest.raises(ValueError, match="video codes in"):
        model(ids.clone().fill_(-1))
    with pytest.raises(ValueError, match="longer than max_seq_len"):
        model(torch.cat([ids, ids[:, :1]], dim=1))
    cache = model.new_cache(2)
    model(ids[:, :-1], None, cache)
    with pytest.raises(ValueError, match="longer than max_seq_len"):
        model(ids[:, :2], None, cache)
    with pytest.raises(ValueError, match="LongTensor"):
        model(ids.float())
    with pytest.raises(ValueError, match="batch size"):
        model(ids, text_for(model, ["only one prompt"]))
    with pytest.raises(ValueError, match="batch size 2"):
        model(ids[:1], None, model.new_cache(2))
    with pytest.raises(ValueError, match="crop"):
        KVCache(1, 1, 8, 4, 6).crop(3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"moe_groups": 4, "moe_topk_groups": 5}, "topk_groups"),
        ({"moe_top_k": 9}, "top_k"),
        ({"n_dense_layers": 4}, "n_dense_layers"),
        ({"bridge_layers": [3]}, "bridge_layers"),
        ({"qk_rope_head_dim": 7}, "qk_rope_head_dim"),
        ({"d_model": 0}, "d_model"),
    ],
)
def test_bad_configs_raise_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        WorldModel(**{**TINY, **overrides})


def test_every_moe_argument_comes_from_the_config():
    """The MoE layers are built from the config by name (transformer.build_moe): a value set in the config reaches
    the layer, for every MoE argument."""
    from worldmodel.model.transformer import build_moe

    values = dict(moe_experts=4, moe_expert_hidden=16, moe_top_k=3, moe_groups=2, moe_topk_groups=2,
                  moe_shared_experts=2, moe_score_func="softmax", moe_route_scale=2.5, moe_top_p=0.7,
                  moe_capacity_factor=1.5, moe_bias_update_speed=0.01, moe_seq_aux_weight=0.02,
                  moe_z_loss_weight=0.03, moe_entropy_weight=0.04, moe_dispatch="loop")  # fmt: skip
    model = WorldModel(**{**TINY, **values})
    moe, router = model.blocks[1].ffn, model.blocks[1].ffn.router
    assert (router.n_experts, moe.experts.hidden, router.top_k, router.n_groups, router.topk_groups) == (4, 16, 3, 2, 2)
    assert moe.shared.gate_proj.out_features == 2 * 16 and moe.experts.dispatch == "loop"
    assert (router.score_func, router.route_scale, router.top_p) == ("softmax", 2.5, 0.7)
    assert router.bias_update_speed == 0.01
    assert (moe.capacity_factor, moe.seq_aux_weight, moe.z_loss_weight, moe.entropy_weight) == (1.5, 0.02, 0.03, 0.04)
    with pytest.raises(KeyError, match="moe_dispatch"):  # an MoE argument without its config key is an error
        build_moe({k: v for k, v in model.config.items() if k != "moe_dispatch"})


def _prompts(model: WorldModel):
    ids, mask = ByteTokenizer(model.config.max_text_len).encode(["a red ball falls", ""])
    return model.encode_text(ids, mask)


def test_fresh_bridges_pass_gradient_to_their_projections():
    """A bridge gate at 0 blocks every gradient into the bridge's projections (the shipped model's bridges stayed
    shut through 3000 steps that way); the default init must let a fresh model learn from the text."""
    torch.manual_seed(0)
    model = WorldModel(**TINY)
    ids = sequence(model)
    loss = model(ids, text_for(model, ["a red ball falls", "two blue balls collide"])).logits.logsumexp(-1).mean()
    loss.backward()
    for block in model.blocks:
        if block.bridge is not None:
            for proj in (block.bridge.q, block.bridge.kv, block.bridge.out):
                assert proj.weight.grad.abs().max() > 1e-6
    assert model.text_encoder.embed.weight.grad.abs().max() > 1e-6


def test_decoding_projects_the_text_once_per_bridge_with_the_same_logits():
    model = make_model()
    ids = sequence(model)
    with torch.no_grad():
        full = model(ids, text=_prompts(model)).logits
        text = _prompts(model)
        cache = model.new_cache(2)
        steps = [model(ids[:, i : i + 1], text=text, cache=cache).logits for i in range(ids.shape[1])]
    assert set(text.kv) == {b.bridge for b in model.blocks if b.bridge is not None}
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-4, rtol=1e-4)


def test_text_projections_are_not_memoised_while_training():
    model = make_model().train()
    text = _prompts(model)
    model(sequence(model), text=text).logits.sum().backward()
    assert text.kv == {}


def test_router_stats_off_gives_the_same_logits_and_no_moe_stats():
    model = make_model()
    ids, text = sequence(model), text_for(model, ["a red ball falls", ""])
    with torch.no_grad():
        full = model(ids, text)
        lean = model(ids, text, router_stats=False)
    assert torch.equal(full.logits, lean.logits)
    assert full.stats and not lean.stats and lean.aux_loss == 0


def test_rope_table_equals_positions_computed_on_the_fly():
    from worldmodel.model.rope import VideoRoPE

    table, direct = VideoRoPE(12, 4, 4, max_positions=49), VideoRoPE(12, 4, 4)
    for start, length in ((0, 49), (17, 1), (40, 9)):
        for a, b in zip(table(start, length), direct(start, length), strict=True):
            assert torch.equal(a, b)
    assert table(45, 10)[0].shape == (10, 12)  # past the table: computed directly
