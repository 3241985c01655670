"""Same seed, same bytes: a request's clip is identical alone and in any batch, with per-row settings."""

from dataclasses import replace

import numpy as np
import pytest
from serving_toys import tiny_pipeline

from worldmodel.pipelines import SamplingParams
from worldmodel.serving.batched import BatchedDecoder, ClipRequest


@pytest.fixture(scope="module")
def decoder():
    return BatchedDecoder(tiny_pipeline())


def context(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


TEXT = [
    ClipRequest("a red ball falls", 1, 9, 3.0, SamplingParams(1.0)),
    ClipRequest("two balls collide", 2, 9, 1.0, SamplingParams(0.7, top_k=5)),
    ClipRequest("", 3, 9, 3.0, SamplingParams(0.0)),
    ClipRequest("a blue ball rolls left", 4, 9, 2.0, SamplingParams(1.2, top_k=8, top_p=0.9)),
    ClipRequest("a red ball falls", 5, 9, 3.0, SamplingParams(1.0)),
]
ROLLOUTS = [
    ClipRequest("", 7, 9, 1.0, SamplingParams(1.0), context(0)),
    ClipRequest("a green ball", 8, 9, 4.0, SamplingParams(0.9, top_k=4), context(1)),
    ClipRequest("", 9, 9, 1.0, SamplingParams(0.0), context(2)),
]


@pytest.mark.parametrize("requests", [TEXT, ROLLOUTS], ids=["text-to-video", "rollout"])
def test_alone_equals_in_a_batch(decoder, requests):
    alone = [decoder([r])[0] for r in requests]
    together = decoder(requests)
    reversed_order = decoder(requests[::-1])[::-1]
    for a, b, c in zip(alone, together, reversed_order, strict=True):
        assert a.dtype == np.uint8 and a.shape == (9, 32, 32, 3)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_seeds_and_prompts_matter(decoder):
    first, other_seed, other_prompt = decoder([TEXT[0], TEXT[4], TEXT[1]])
    assert not np.array_equal(first, other_seed)  # same prompt and settings, seed 1 vs 5
    assert not np.array_equal(first, other_prompt)


def test_sliding_window_and_progress(decoder):
    seen = []
    clip = ClipRequest("a red ball falls", 1, 17, 3.0)  # 5 latent frames, all generated: past the model's 3
    frames = decoder([clip], lambda done, total: seen.append((done, total)))[0]
    assert frames.shape == (17, 32, 32, 3)
    assert seen[-1] == (5 * 16, 5 * 16) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_array_equal(frames, decoder([clip, replace(TEXT[1], num_frames=17)])[0])


def test_mixed_shapes_are_refused(decoder):
    with pytest.raises(ValueError, match="must share"):
        decoder([TEXT[0], ROLLOUTS[0]])
