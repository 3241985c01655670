"""Toy causal LMs for the model-agnostic sampling tests: a fixed random logit table per (position, token)."""

from __future__ import annotations

import torch


class ToyCache:
    """A KV cache stand-in: remembers the tokens it was fed."""

    def __init__(self, batch_size: int) -> None:
        self.tokens = torch.zeros(batch_size, 0, dtype=torch.long)

    @property
    def length(self) -> int:
        """Number of cached tokens."""
        return self.tokens.shape[1]

    def crop(self, length: int) -> None:
        """Roll back to the first ``length`` tokens."""
        if length > self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {length}")
        self.tokens = self.tokens[:, :length]


class ToyLM:
    """Next-token logits = ``table[position, token]``: Markov in the tokens, position-dependent.

    Token id ``vocab`` is BOS. Positions past ``max_len`` raise IndexError, so a caller that loses track of
    positions or overruns the context fails loudly. ``prefills`` records every multi-token input.
    """

    def __init__(self, vocab: int, max_len: int, seed: int, scale: float = 2.0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.vocab = vocab
        self.bos_token_id = vocab
        self.table = torch.randn(max_len, vocab + 1, vocab, generator=g) * scale  # (L, V+1, V)
        self.calls = 0
        self.prefills: list[torch.Tensor] = []

    def new_cache(self, batch_size: int) -> ToyCache:
        """A fresh cache."""
        return ToyCache(batch_size)

    def __call__(self, input_ids: torch.Tensor, cache: ToyCache | None) -> torch.Tensor:
        """Logits ``(B, N, V)``."""
        self.calls += 1
        offset = 0
        if cache is not None:
            offset = cache.length
            cache.tokens = torch.cat([cache.tokens, input_ids], dim=1)
        if input_ids.shape[1] > 1:
            self.prefills.append(input_ids.clone())
        positions = torch.arange(offset, offset + input_ids.shape[1])
        if positions[-1] >= self.table.shape[0]:
            raise IndexError(f"position {int(positions[-1])} is past the toy model's {self.table.shape[0]}")
        return self.table[positions[None, :], input_ids]  # (B, N, V)

    def perturbed(self, seed: int, noise: float) -> ToyLM:
        """A draft model: the same table plus Gaussian noise (agrees with this one partly)."""
        draft = ToyLM(self.vocab, self.table.shape[0], seed)
        draft.table = self.table + noise * draft.table / 2.0
        return draft

