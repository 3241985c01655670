"""Small bidirectional transformer over ByteTokenizer ids: the text side of the cross-modal bridge."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ffn import FeedForward


def padding_attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """Key mask `(B, 1, 1, L)` for SDPA from a token mask `(B, L)`.

    Rows with no real token attend everywhere instead (keeps the softmax finite); their outputs are
    meaningless and every consumer must ignore them, as the bridge does.
    """
    empty = ~mask.any(dim=-1, keepdim=True)  # (B, 1)
    return (mask | empty)[:, None, None, :]


class TextEncoderLayer(nn.Module):
    """Pre-norm bidirectional self-attention + SwiGLU FFN."""

    def __init__(self, d_model: int, n_heads: int, norm_eps: float = 1e-6) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"text_d_model ({d_model}) must be divisible by text_heads ({n_heads}).")
        self.n_heads = n_heads
        self.attn_norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.ffn_norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.ffn = FeedForward(d_model, 4 * d_model)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, Dt), attn_mask (B, 1, 1, L) bool  ->  (B, L, Dt)."""
        bsz, length, dim = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(bsz, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, L, dh)
        x = x + self.out(attn.transpose(1, 2).reshape(bsz, length, dim))
        return x + self.ffn(self.ffn_norm(x))


def center_states(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x (B, L, D)` minus its mean over each row's real positions (`mask (B, L)`); padding rows stay as they are."""
    count = mask.sum(dim=1, keepdim=True).clamp_min(1)[..., None]  # (B, 1, 1)
    mean = (x * mask[..., None]).sum(dim=1, keepdim=True) / count  # (B, 1, D)
    return x - mean


class TextEncoder(nn.Module):
    """Byte embeddings + learned positions -> `n_layers` bidirectional layers -> RMSNorm; `(B, L) -> (B, L, Dt)`.

    `center=True` subtracts each prompt's mean state (over its real bytes) before the final norm, so that the
    output carries only what differs between positions: a component shared by every byte (one layer's FFN grew
    one of norm 340 in a small world model, after which every caption encoded to nearly the same states and the
    bridge could only read "some text" from them) cannot reach the bridge.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_layers: int, n_heads: int,
                 center: bool = False) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.center = center
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.layers = nn.ModuleList(TextEncoderLayer(d_model, n_heads) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model, eps=1e-6)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L) long, mask (B, L) bool  ->  states (B, L, Dt)."""
        if ids.ndim != 2 or mask.shape != ids.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"Text ids and mask must be (B, L) long and (B, L) bool, got {tuple(ids.shape)} and "
                f"{tuple(mask.shape)} {mask.dtype}."
            )
        if ids.shape[1] > self.max_len:
            raise ValueError(f"Text is {ids.shape[1]} tokens long, over the model's max_text_len {self.max_len}.")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"Text ids must lie in [0, {self.vocab_size}), got [{ids.min()}, {ids.max()}].")
        x = self.embed(ids) + self.pos.weight[: ids.shape[1]]  # (B, L, Dt)
        attn_mask = padding_attention_mask(mask)
        for layer in self.layers:
            x = layer(x, attn_mask)
        if self.center:
            x = center_states(x, mask)
        return self.norm(x)
