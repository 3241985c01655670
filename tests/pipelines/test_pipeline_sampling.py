"""Sampling building blocks: filters, guidance mixing, cached vs uncached loops, sliding window."""

import pytest
import torch
from pipeline_toys import ToyLM

from worldmodel.pipelines.sampling import (
    DecodeOptions,
    GuidedModel,
    SamplingParams,
    filter_logits,
    generate_codes,
    generate_tokens,
    guidance_mix,
    token_probs,
)


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    out = filter_logits(logits, top_k=2)
    assert torch.isfinite(out).tolist() == [[False, True, True, False]]
    assert out[0, 1] == 4.0 and out[0, 2] == 3.0


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.15]])
    logits = probs.log()
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, False, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, False, True, True]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False]]
    kept = token_probs(logits, SamplingParams(top_p=0.8))
    torch.testing.assert_close(kept, torch.tensor([[0.625, 0.0, 0.375, 0.0]]))


def test_greedy_is_one_hot_and_temperature_sharpens():
    logits = torch.tensor([[0.0, 1.0, 0.5]])
    assert token_probs(logits, SamplingParams(temperature=0)).tolist() == [[0.0, 1.0, 0.0]]
    hot, cold = token_probs(logits, SamplingParams(temperature=2.0)), token_probs(logits, SamplingParams(0.5))
    assert cold[0, 1] > hot[0, 1]


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0.0}, {"top_p": 1.5}])
def test_bad_sampling_params_are_rejected(kwargs):
    with pytest.raises(ValueError):
        SamplingParams(**kwargs)


def test_guidance_mix():
    g = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(2, 3, 7, generator=g), torch.randn(2, 3, 7, generator=g)
    assert torch.equal(guidance_mix(cond, uncond, 1.0), cond)
    torch.testing.assert_close(guidance_mix(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(guidance_mix(cond, uncond, 3.0), uncond + 3.0 * (cond - uncond))


class _TextModel:
    """A fake text-conditioned model: logits = base + the row's text vector; records batch sizes."""

    def __init__(self):
        self.lm = ToyLM(vocab=5, max_len=32, seed=3)
        self.batch_sizes = []

    def new_cache(self, batch_size):
        return self.lm.new_cache(batch_size)

    def __call__(self, input_ids, text=None, cache=None, router_stats=True):
        self.batch_sizes.append(input_ids.shape[0])
        logits = self.lm(input_ids, cache)
        if text is not None:
            logits = logits + text[:, None, :]
        return type("Out", (), {"logits": logits})


def test_guided_model_runs_cond_and_uncond_rows_in_one_batch():
    model = _TextModel()
    cond_text, uncond_text = torch.randn(2, 5), torch.zeros(2, 5)
    ids = torch.tensor([[5, 1, 2], [5, 0, 4]])
    guided = GuidedModel(model, torch.cat([cond_text, uncond_text]), guidance_scale=2.5)
    cache = guided.new_cache(2)
    logits = guided(ids, cache)
    assert model.batch_sizes == [4] and cache.length == 3
    base = model.lm(ids, None)
    torch.testing.assert_close(logits, base + 2.5 * cond_text[:, None, :])
    plain = GuidedModel(model, cond_text, guidance_scale=1.0)
    assert plain.new_cache(2).tokens.shape[0] == 2
    torch.testing.assert_close(plain(ids, None), base + cond_text[:, None, :])


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=0), SamplingParams(1.0, top_k=3, top_p=0.9)])
def test_cached_equals_uncached_and_same_seed_same_tokens(sampling):
    lm = ToyLM(vocab=6, max_len=40, seed=1)
    prefix = torch.tensor([[6, 2], [6, 5], [6, 0]])

    def run(use_cache, seed):
        return generate_tokens(lm, prefix, 30, sampling, torch.Generator().manual_seed(seed), use_cache)

    cached = run(True, 7)
    assert cached.shape == (3, 30)
    assert torch.equal(cached, run(False, 7))
    assert torch.equal(cached, run(True, 7))
    if sampling.temperature > 0:
        assert not torch.equal(cached, run(True, 8))


def test_cache_makes_one_single_token_forward_per_step():
    lm = ToyLM(vocab=4, max_len=20, seed=0)
    generate_tokens(lm, torch.tensor([[4]]), 10, SamplingParams(), torch.Generator().manual_seed(0))
    assert lm.calls == 10  # one prefill + 9 single-token steps (the last token needs no forward)


def test_sliding_window_keeps_positions_in_range_and_continues_the_context():
    h, w, max_frames = 2, 3, 3
    lm = ToyLM(vocab=7, max_len=1 + max_frames * h * w, seed=2)  # positions past the window raise
    context = torch.randint(0, 7, (2, 1, h, w), generator=torch.Generator().manual_seed(0))
    options = DecodeOptions(SamplingParams(), torch.Generator().manual_seed(0))
    codes = generate_codes(lm, context, num_frames=7, max_frames=max_frames, bos_token_id=7, options=options,
                           window_stride=1)
    assert codes.shape == (2, 7, h, w)
    assert torch.equal(codes[:, :1], context)
    # windows: frames [0,3) -> then each new frame re-prefills BOS + the last 2 frames
    prefills = [p for p in lm.prefills if p.shape[1] > 1]
    assert len(prefills) == 5
    assert [p.shape[1] for p in prefills] == [1 + h * w] + [1 + 2 * h * w] * 4
    assert torch.equal(prefills[-1][:, 1:], codes[:, 4:6].reshape(2, -1))
    assert (prefills[-1][:, 0] == 7).all()


def test_sliding_window_starts_from_the_anchor_once_the_window_is_full():
    h, w, max_frames = 2, 3, 3
    lm = ToyLM(vocab=7, max_len=1 + max_frames * h * w, seed=2)
    context = torch.randint(0, 7, (2, 1, h, w), generator=torch.Generator().manual_seed(0))
    seen = []

    def anchor(codes, keep):  # stands in for "re-encode the kept frames from pixels"
        seen.append((codes.shape[1], keep))
        return (codes[:, -keep:] + 1) % 7

    options = DecodeOptions(SamplingParams(), torch.Generator().manual_seed(0))
    codes = generate_codes(lm, context, 6, max_frames, 7, options, window_stride=1, anchor=anchor)
    assert codes.shape == (2, 6, h, w) and torch.equal(codes[:, :1], context)
    assert seen == [(3, 2), (4, 2), (5, 2)]  # only slides are anchored, never the first window
    prefills = [p for p in lm.prefills if p.shape[1] > 1]
    assert torch.equal(prefills[0][:, 1:], context.reshape(2, -1))  # the first window: the native codes
    assert torch.equal(prefills[-1][:, 1:], ((codes[:, 3:5] + 1) % 7).reshape(2, -1))  # then the anchor's


def test_sliding_window_stride_and_errors():
    lm = ToyLM(vocab=5, max_len=1 + 4 * 4, seed=0)
    empty = torch.zeros(1, 0, 2, 2, dtype=torch.long)
    codes = generate_codes(lm, empty, 9, 4, 5, DecodeOptions(generator=torch.Generator().manual_seed(1)),
                           window_stride=2)
    assert codes.shape == (1, 9, 2, 2)
    with pytest.raises(ValueError, match="window_stride"):
        generate_codes(lm, empty, 9, 4, 5, DecodeOptions(), window_stride=4)
    with pytest.raises(ValueError, match="must exceed"):
        generate_codes(lm, torch.zeros(1, 2, 2, 2, dtype=torch.long), 2, 4, 5, DecodeOptions())


@pytest.mark.parametrize("long_video", [dict(attention_impl="block_sparse", sparse_block_size=4, sparse_top_k=1),
                                        dict(mod_layers=[1], mod_rho=0.3),
                                        dict(attention_impl="block_sparse", sparse_block_size=4, sparse_top_k=1,
                                             mod_layers=[0, 1])])
def test_sliding_window_video_with_sparse_attention_and_pruning_is_exact(long_video):
    from worldmodel.model import WorldModel

    torch.manual_seed(0)
    model = WorldModel(codebook_size=16, latent_frames=3, latent_height=2, latent_width=3, d_model=32, n_layers=2,
                       n_heads=2, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=6, v_head_dim=8,
                       dense_hidden=64, moe_experts=4, moe_expert_hidden=16, moe_top_k=2, moe_groups=1,
                       moe_topk_groups=1, text_d_model=16, text_layers=1, text_heads=2, **long_video).eval()
    lm = GuidedModel(model)
    context = torch.randint(0, 16, (2, 1, 2, 3), generator=torch.Generator().manual_seed(0))

    def run(use_cache):
        options = DecodeOptions(SamplingParams(), torch.Generator().manual_seed(3), use_cache=use_cache)
        return generate_codes(lm, context, num_frames=7, max_frames=3, bos_token_id=16, options=options)

    cached = run(True)  # 7 latent frames through a 3-frame model: four window slides
    assert cached.shape == (2, 7, 2, 3) and torch.equal(cached[:, :1], context)
    assert torch.equal(cached, run(False))
