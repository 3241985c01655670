"""Cross-modal bridge: Flamingo-style gated cross-attention from video tokens to text-encoder states."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .text_encoder import padding_attention_mask


@dataclass
class TextContext:
    """Encoded prompts: `states (B, L, Dt)` and `mask (B, L)` (True = real token; an all-False row = no text).

    `kv` memoises each bridge's text keys and values (with the key mask and the has-text flags) when gradients
    are off, so that decoding, which calls the model once per token with the same context, projects the text
    only once per bridge.
    """

    states: torch.Tensor
    mask: torch.Tensor
    kv: dict[nn.Module, tuple[torch.Tensor, ...]] = field(default_factory=dict, repr=False, compare=False)


class GatedCrossAttention(nn.Module):
    """`x + tanh(gate) * CrossAttn(RMSNorm(x), text)`.

    `gate_init` 0 makes a fresh bridge the identity (Flamingo: for adding text to a trained model), but then its
    projections get no gradient until the gate itself moves, which a weak text signal may never do; a model
    trained from scratch starts it open (1.0, tanh 0.76).

    Rows whose text mask is all False get exactly zero cross-attention output (unconditional), without NaN.

    `qk_norm=True` RMS-normalises each head's queries and keys (learned gains): the attention logits then start
    at unit scale instead of near zero, so a bridge can pick out one word of the prompt from the first steps
    rather than averaging all of its bytes.
    """

    def __init__(self, d_model: int, text_dim: int, n_heads: int, norm_eps: float = 1e-6,
                 gate_init: float = 0.0, qk_norm: bool = False) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}) for the bridge.")
        self.n_heads = n_heads
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.kv = nn.Linear(text_dim, 2 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.gate = nn.Parameter(torch.full((1,), float(gate_init)))
        head_dim = d_model // n_heads
        self.q_norm = nn.RMSNorm(head_dim, eps=norm_eps) if qk_norm else None
        self.k_norm = nn.RMSNorm(head_dim, eps=norm_eps) if qk_norm else None

    def text_kv(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text keys and values `(B, H, L, dh)` each from `states (B, L, Dt)`."""
        bsz, length, _ = states.shape
        k, v = self.kv(states).view(bsz, length, 2, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        return (k if self.k_norm is None else self.k_norm(k)), v

    def forward(self, x: torch.Tensor, text: TextContext) -> torch.Tensor:
        """x (B, N, D), text.states (B, L, Dt)  ->  the residual update (B, N, D) (not yet added to x)."""
        bsz, n, dim = x.shape
        if text.states.shape[0] != bsz:
            raise ValueError(f"Text batch size {text.states.shape[0]} does not match the video batch size {bsz}.")
        q = self.q(self.norm(x)).view(bsz, n, self.n_heads, -1).transpose(1, 2)  # (B, H, N, dh)
        if self.q_norm is not None:
            q = self.q_norm(q)
        if torch.is_grad_enabled():
            k, v = self.text_kv(text.states)
            key_mask, has_text = padding_attention_mask(text.mask), text.mask.any(dim=-1)
        else:  # decoding calls once per token with the same context: project the text (and mask it) once
            if self not in text.kv:
                text.kv[self] = (*self.text_kv(text.states), padding_attention_mask(text.mask), text.mask.any(dim=-1))
            k, v, key_mask, has_text = text.kv[self]
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (B, H, N, dh)
        scale = torch.tanh(self.gate).to(x.dtype) * has_text.to(x.dtype)[:, None, None]  # (B, 1, 1); 0 without text
        return self.out(attn.transpose(1, 2).reshape(bsz, n, dim)) * scale
