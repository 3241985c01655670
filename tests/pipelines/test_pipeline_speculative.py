"""Speculative sampling: exact in distribution (chi-square), identical to greedy, and the caches roll back."""

import itertools

import pytest
import torch
from pipeline_toys import ToyLM
from scipy.stats import chisquare

import worldmodel.pipelines.speculative as speculative
from worldmodel.pipelines.sampling import SamplingParams, generate_tokens, sample_tokens, token_probs
from worldmodel.pipelines.speculative import FrameCopyDraft, SpeculativeStats, speculative_generate

VOCAB, LENGTH = 3, 3


def _target_joint(lm, sampling):
    """Exact probability of every length-LENGTH sequence after BOS, by enumeration."""
    probs = {}
    for seq in itertools.product(range(VOCAB), repeat=LENGTH):
        tokens = torch.tensor([[lm.bos_token_id, *seq]])
        step = token_probs(lm(tokens, None)[0, :LENGTH], sampling)  # (LENGTH, V)
        probs[seq] = float(step[torch.arange(LENGTH), torch.tensor(seq)].prod())
    return probs


def _chi_square_pvalue(target, draft, sampling, batch, runs):
    """Sample ``batch * runs`` sequences speculatively; chi-square p-value against the exact target joint."""
    generator = torch.Generator().manual_seed(0)
    prefix = torch.full((batch, 1), target.bos_token_id)
    stats = SpeculativeStats()
    samples = []
    for _ in range(runs):
        tokens, run_stats = speculative_generate(target, draft, prefix, LENGTH, sampling, 2, generator)
        samples.append(tokens)
        stats.drafted, stats.accepted = stats.drafted + run_stats.drafted, stats.accepted + run_stats.accepted
    tokens = torch.cat(samples)
    joint = _target_joint(target, sampling)
    cells = [s for s, p in joint.items() if p > 0]
    index = {s: i for i, s in enumerate(cells)}
    observed = torch.zeros(len(cells))
    for row in tokens.tolist():
        observed[index[tuple(row)]] += 1  # a sequence the target cannot produce raises KeyError
    expected = torch.tensor([joint[s] for s in cells], dtype=torch.float64)
    expected = expected / expected.sum() * len(tokens)
    return chisquare(observed.double().numpy(), expected.numpy()).pvalue, stats


@pytest.mark.parametrize(("sampling", "batch", "runs", "copy"), [
    (SamplingParams(), 1, 1500, False),  # one row: long accepted runs and the bonus token
    (SamplingParams(temperature=0.8, top_k=2), 1, 1500, False),
    (SamplingParams(), 2000, 1, False),  # a wide batch: rows keep the batch's shortest accepted prefix
    (SamplingParams(), 1, 1500, True),  # one-hot proposals (FrameCopyDraft)
])
def test_speculative_sampling_reproduces_the_target_distribution(sampling, batch, runs, copy):
    target = ToyLM(VOCAB, LENGTH + 4, seed=0, scale=1.0)
    draft = FrameCopyDraft(tokens_per_frame=1, vocab_size=VOCAB) if copy else target.perturbed(seed=1, noise=1.0)
    pvalue, stats = _chi_square_pvalue(target, draft, sampling, batch, runs)
    if batch == 1:
        assert 0.05 < stats.acceptance_rate < 0.9  # the draft disagrees often enough to exercise rejections
    assert pvalue > 1e-3


def _wrong_accept(p, q, draft, generator=None):
    """A plausible but wrong rule: on rejection, resample from p instead of max(0, p - q)."""
    batch, k = draft.shape
    p_x = p[:, :k].gather(-1, draft[..., None]).squeeze(-1)
    q_x = q.gather(-1, draft[..., None]).squeeze(-1)
    rejected = ~(torch.rand(batch, k, generator=generator) * q_x < p_x)
    first = torch.where(rejected.any(1), rejected.int().argmax(1), k) if k else torch.zeros(batch, dtype=torch.long)
    n = int(first.min())
    if n == k:
        return n, sample_tokens(p[:, k], generator)
    return n, torch.where(first == n, sample_tokens(p[:, n], generator), draft[:, n])


def test_chi_square_test_detects_a_wrong_acceptance_rule(monkeypatch):
    target = ToyLM(VOCAB, LENGTH + 4, seed=0, scale=1.0)
    draft = target.perturbed(seed=1, noise=1.0)
    monkeypatch.setattr(speculative, "speculative_accept", _wrong_accept)
    pvalue, _ = _chi_square_pvalue(target, draft, SamplingParams(), 2000, 1)
    assert pvalue < 1e-6


@pytest.mark.parametrize("num_draft_tokens", [1, 3, 8])
def test_greedy_speculative_equals_greedy_plain(num_draft_tokens):
    target = ToyLM(vocab=8, max_len=64, seed=4)
    draft = target.perturbed(seed=5, noise=0.7)
    prefix = torch.tensor([[8, 1, 2], [8, 3, 3], [8, 7, 0]])
    greedy = SamplingParams(temperature=0)
    plain = generate_tokens(target, prefix, 50, greedy)
    calls_before = target.calls
    spec, stats = speculative_generate(target, draft, prefix, 50, greedy, num_draft_tokens)
    assert torch.equal(spec, plain)
    assert 0 < stats.accepted < stats.drafted  # some drafts were wrong, so the rollback path ran
    assert target.calls - calls_before == stats.rounds < 50


def test_a_perfect_draft_is_always_accepted():
    target = ToyLM(vocab=5, max_len=40, seed=0)
    prefix = torch.full((2, 1), 5)
    tokens, stats = speculative_generate(target, target.perturbed(0, 0.0), prefix, 30, SamplingParams(), 4,
                                         torch.Generator().manual_seed(0))
    assert tokens.shape == (2, 30)
    assert stats.accepted == stats.drafted and stats.rounds == 6  # 5 tokens per round


def test_frame_copy_draft_proposes_the_code_one_latent_frame_back():
    draft = FrameCopyDraft(tokens_per_frame=3, vocab_size=10)
    seq = torch.tensor([[10, 1, 2, 3, 4, 5, 6, 7]])  # BOS, frame 0 = (1, 2, 3), frame 1 = (4, 5, 6), 7
    cache = draft.new_cache(1)
    logits = torch.cat([draft(seq[:, :5], cache), draft(seq[:, 5:], cache)], dim=1)
    # position j predicts code j: frame 0 copies the previous code (BOS -> 0), later frames copy 3 back
    assert logits.argmax(-1).tolist() == [[0, 1, 2, 1, 2, 3, 4, 5]]
    assert torch.isinf(logits).sum() == 8 * 9
    assert torch.equal(draft(seq, None), logits)
    cache.crop(4)
    assert torch.equal(draft(seq[:, 4:], cache), logits[:, 4:])


class _RepeatingLM(ToyLM):
    """A ToyLM that strongly prefers the code one latent frame back (+8 logits), like still background."""

    def __init__(self, tokens_per_frame: int, vocab: int, frames: int) -> None:
        super().__init__(vocab, 1 + frames * tokens_per_frame, seed=0)
        self.copy = FrameCopyDraft(tokens_per_frame, vocab)

    def __call__(self, input_ids, cache):
        history = input_ids if cache is None else torch.cat([cache.tokens, input_ids], dim=1)
        logits = super().__call__(input_ids, cache)
        proposal = self.copy(history, None)[:, -input_ids.shape[1]:]
        return logits + torch.where(torch.isinf(proposal), 0.0, 8.0)


@pytest.mark.parametrize("sampling", [SamplingParams(temperature=0), SamplingParams()])
def test_frame_copy_draft_is_accepted_on_repetitive_video(sampling):
    hw, vocab, frames = 4, 6, 5
    target = _RepeatingLM(hw, vocab, frames)
    prefix = torch.full((2, 1), vocab)
    fast, stats = speculative_generate(target, FrameCopyDraft(hw, vocab), prefix, frames * hw, sampling, 6,
                                       torch.Generator().manual_seed(0))
    assert stats.acceptance_rate > 0.5 and stats.rounds < frames * hw / 2  # far fewer target forwards
    if sampling.temperature == 0:
        assert torch.equal(fast, generate_tokens(target, prefix, frames * hw, sampling))
