"""Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): a small draft model proposes ``k`` tokens,
the target model scores all of them in one forward pass, and an acceptance rule keeps a prefix of them.

The rule makes the output distributed exactly as sampling from the target alone: draft token ``x ~ q`` is
accepted with probability ``min(1, p(x) / q(x))``; at the first rejection the token is drawn from
``normalise(max(0, p - q))``; if all ``k`` are accepted, one more token is drawn from the target's next
distribution. Under greedy decoding (``temperature=0``) ``p`` and ``q`` are one-hot, so the output equals
greedy decoding of the target token for token.

Rows of a batch reject at different places; every row keeps the batch's shortest accepted prefix ``n`` and
takes, at position ``n``, its own outcome there (its accepted draft token or its residual sample). Each
token is still drawn from the target's conditional distribution, so the batch stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from worldmodel.pipelines.sampling import CausalLM, SamplingParams, sample_tokens, token_probs


class TokenHistory:
    """The cache of a :class:`FrameCopyDraft`: just the tokens seen so far ``(B, S)``."""

    def __init__(self, batch_size: int) -> None:
        self.tokens = torch.zeros(batch_size, 0, dtype=torch.long)  # moves to the inputs' device on first use

    @property
    def length(self) -> int:
        """Number of tokens held."""
        return self.tokens.shape[1]

    def crop(self, length: int) -> None:
        """Roll back to the first ``length`` tokens."""
        self.tokens = self.tokens[:, :length]


class FrameCopyDraft:
    """A draft that costs nothing: propose the code at the same place in the previous latent frame.

    Scenes of a few moving objects are mostly still background, so most codes repeat the code one latent
    frame earlier (``tokens_per_frame`` positions back); inside the first latent frame it proposes the
    previous code. The proposal is one-hot (``q = 1`` on the copied code), so the acceptance rule keeps the
    output exactly distributed as the target's: a copy is accepted with probability ``p(copy)``.
    Sequences are ``[BOS, code_0, code_1, ...]``.
    """

    def __init__(self, tokens_per_frame: int, vocab_size: int) -> None:
        self.tokens_per_frame = tokens_per_frame
        self.vocab_size = vocab_size

    def new_cache(self, batch_size: int) -> TokenHistory:
        """An empty token history."""
        return TokenHistory(batch_size)

    def __call__(self, input_ids: torch.Tensor, cache: TokenHistory | None) -> torch.Tensor:
        """Logits ``(B, N, V)``: 0 on the proposed code, -inf elsewhere."""
        history = input_ids if cache is None else torch.cat([cache.tokens.to(input_ids.device), input_ids], dim=1)
        if cache is not None:
            cache.tokens = history
        n = input_ids.shape[1]
        position = torch.arange(history.shape[1] - n, history.shape[1], device=history.device)  # inputs' indices
        source = position + 1 - self.tokens_per_frame  # the same place one latent frame before the next code
        source = torch.where(source >= 1, source, position)  # first latent frame: repeat the previous code
        proposal = history[:, source]  # (B, N)
        proposal = torch.where(proposal < self.vocab_size, proposal, 0)  # BOS proposes code 0
        logits = torch.full((*proposal.shape, self.vocab_size), float("-inf"), device=history.device)
        return logits.scatter_(-1, proposal[..., None], 0.0)


@dataclass
class SpeculativeStats:
    """Counts from one speculative run: rounds (= target forward passes), drafted and accepted tokens."""

    rounds: int = 0
    drafted: int = 0
    accepted: int = 0

    @property
    def acceptance_rate(self) -> float:
        """Fraction of drafted tokens that were kept."""
        return self.accepted / self.drafted if self.drafted else 0.0


def speculative_accept(p: torch.Tensor, q: torch.Tensor, draft: torch.Tensor,
                       generator: torch.Generator | None = None) -> tuple[int, torch.Tensor]:
    """Apply the acceptance rule to one round.

    ``p (B, k+1, V)``: target distributions at the ``k`` draft positions and one after; ``q (B, k, V)``:
    the draft's distributions; ``draft (B, k)``: the tokens sampled from ``q``. Returns ``n``, the number of
    draft tokens every row keeps, and ``next_token (B,)``, each row's token at position ``n``.
    """
    batch, k = draft.shape
    if k == 0:
        return 0, sample_tokens(p[:, 0], generator)
    p_x = p[:, :k].gather(-1, draft[..., None]).squeeze(-1)  # (B, k)
    q_x = q.gather(-1, draft[..., None]).squeeze(-1)  # (B, k), > 0: x was drawn from q
    u = torch.rand(batch, k, generator=generator, device=p.device)
    accepted = u * q_x < p_x  # u < p/q: probability min(1, p/q)
    rejected = ~accepted
    first_rejection = torch.where(rejected.any(dim=1), rejected.int().argmax(dim=1), k)  # (B,)
    n = int(first_rejection.min())
    if n == k:  # every row accepted every draft: one more token from the target
        return n, sample_tokens(p[:, k], generator)
    residual = (p[:, n] - q[:, n]).clamp_min(0.0)  # (B, V)
    mass = residual.sum(dim=-1, keepdim=True)
    # Rows that accepted position n may have p == q there (zero residual); they never use this sample.
    residual = torch.where(mass > 0, residual / mass.clamp_min(1e-30), p[:, n])
    resampled = sample_tokens(residual, generator)  # (B,)
    return n, torch.where(first_rejection == n, resampled, draft[:, n])


@torch.no_grad()
def speculative_generate(target: CausalLM, draft: CausalLM, prefix: torch.Tensor, num_tokens: int,
                         sampling: SamplingParams, num_draft_tokens: int = 4,
                         generator: torch.Generator | None = None,
                         progress: Any = None) -> tuple[torch.Tensor, SpeculativeStats]:
    """Sample ``num_tokens`` tokens after ``prefix (B, P)`` from ``target``, proposing with ``draft``.

    Returns ``(tokens (B, num_tokens), stats)``. Both models keep KV caches; after each round they are
    cropped back to the tokens that were kept (the cache's ``crop``).
    """
    batch, start = prefix.shape
    target_cache, draft_cache = target.new_cache(batch), draft.new_cache(batch)
    seq = prefix  # (B, S): every token kept so far
    stats = SpeculativeStats()
    while seq.shape[1] - start < num_tokens:
        k = min(num_draft_tokens, num_tokens - (seq.shape[1] - start) - 1)
        # 1. the draft proposes k tokens, one forward each (the first also feeds what its cache lacks)
        pending = seq[:, draft_cache.length:]
        proposals, q = [], []
        for _ in range(k):
            probs = token_probs(draft(pending, draft_cache)[:, -1], sampling)  # (B, V)
            greedy = sampling.temperature == 0  # probs is one-hot: its argmax is the sample, no RNG call
            token = probs.argmax(dim=-1) if greedy else sample_tokens(probs, generator)  # (B,)
            proposals.append(token)
            q.append(probs)
            pending = token[:, None]
        drafted = torch.stack(proposals, dim=1) if k else seq.new_zeros(batch, 0)  # (B, k)
        # 2. the target scores the proposals (and one position past them) in one forward
        logits = target(torch.cat([seq[:, target_cache.length:], drafted], dim=1), target_cache)
        p = token_probs(logits[:, -(k + 1):], sampling)  # (B, k+1, V)
        q_probs = torch.stack(q, dim=1) if k else p[:, :0]  # (B, k, V)
        # 3. keep the accepted prefix and one more token; roll the caches back to the kept tokens
        n, next_token = speculative_accept(p, q_probs, drafted, generator)
        kept = seq.shape[1] + n
        seq = torch.cat([seq, drafted[:, :n], next_token[:, None]], dim=1)
        target_cache.crop(kept)
        if draft_cache.length > kept:
            draft_cache.crop(kept)
        stats.rounds += 1
        stats.drafted += k
        stats.accepted += n
        if progress is not None:
            progress.update(n + 1)
    return seq[:, start:], stats
