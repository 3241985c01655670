"""Toy causal LMs for the model-agnostic sampling tests: a fixed random logit table per (position, token)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config


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


# --------------------------------------------------------------------------------------------------------------
# A toy world model with the WorldModel interface, for pipeline plumbing tests (saves and loads like the real one).


@dataclass
class ToyTextContext:
    """Text states ``(B, L, D)`` and mask ``(B, L)``."""

    states: torch.Tensor
    mask: torch.Tensor


@dataclass
class ToyOutput:
    """Logits ``(B, N, V)``."""

    logits: torch.Tensor


class ToyWorldCache:
    """Per-token hidden inputs ``(B, N, D)`` of a :class:`ToyWorldModel`."""

    def __init__(self, batch_size: int, dim: int) -> None:
        self.embeddings = torch.zeros(batch_size, 0, dim)

    @property
    def length(self) -> int:
        """Number of cached tokens."""
        return self.embeddings.shape[1]

    def crop(self, length: int) -> None:
        """Roll back to ``length`` tokens."""
        self.embeddings = self.embeddings[:, :length]


class ToyWorldModel(ModelMixin, ConfigMixin):
    """h_i = mean_{j<=i} embed(x_j) + pos_i + masked-mean text state; logits = head(tanh(h_i))."""

    @register_to_config
    def __init__(self, codebook_size: int = 16, latent_frames: int = 3, latent_height: int = 4,
                 latent_width: int = 4, max_text_len: int = 64, dim: int = 16) -> None:
        super().__init__()
        max_seq_len = latent_frames * latent_height * latent_width + 1
        self.embed = torch.nn.Embedding(codebook_size + 1, dim)
        self.pos = torch.nn.Embedding(max_seq_len, dim)
        self.text_embed = torch.nn.Embedding(257, dim)
        self.head = torch.nn.Linear(dim, codebook_size)
        with torch.no_grad():
            self.head.weight.mul_(8.0)

    @property
    def bos_token_id(self) -> int:
        """The BOS token id (= codebook_size)."""
        return self.config.codebook_size

    def new_cache(self, batch_size: int) -> ToyWorldCache:
        """An empty cache."""
        return ToyWorldCache(batch_size, self.config.dim)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> ToyTextContext:
        """Embed byte ids."""
        return ToyTextContext(self.text_embed(ids) * mask[..., None], mask)

    def forward(self, input_ids: torch.Tensor, text: ToyTextContext | None = None,
                cache: ToyWorldCache | None = None) -> ToyOutput:
        """Logits ``(B, N, V)``."""
        start = cache.length if cache is not None else 0
        e = self.embed(input_ids)  # (B, N, D)
        if cache is not None:
            cache.embeddings = torch.cat([cache.embeddings, e], dim=1)
            e = cache.embeddings
        counts = torch.arange(1, e.shape[1] + 1, dtype=e.dtype)[None, :, None]
        h = (e.cumsum(dim=1) / counts)[:, start:]  # (B, N, D)
        h = h + self.pos(torch.arange(start, start + input_ids.shape[1]))
        if text is not None:
            h = h + text.states.sum(1, keepdim=True) / text.mask.sum(1).clamp_min(1)[:, None, None]
        return ToyOutput(self.head(torch.tanh(h)))
