"""Factorised 3D rotary position embedding over the (t, h, w) grid of video codes.

Sequence layout: position 0 is the BOS token, positions 1.. are video codes in raster order (t, h, w).
A video code at grid cell (t, y, x) gets the 3D coordinate (t + 1, y, x); BOS gets (0, 0, 0), i.e. it sits
"one frame before" the first frame at the top-left corner. The rotary pairs of a head are split into three
bands, one per axis, each rotated by its own coordinate (Lumina/Qwen2-VL style M-RoPE).
"""

from __future__ import annotations

import torch
from torch import nn


def split_rope_dims(rope_dim: int) -> tuple[int, int, int]:
    """Split an even `rope_dim` into three even band widths (t, h, w), the t band taking any remainder."""
    if rope_dim < 6 or rope_dim % 2:
        raise ValueError(f"qk_rope_head_dim must be an even number >= 6 (two per axis t, h, w), got {rope_dim}.")
    pairs = rope_dim // 2
    base, extra = divmod(pairs, 3)
    return (2 * (base + extra), 2 * base, 2 * base)


def grid_positions(start: int, length: int, height: int, width: int) -> torch.Tensor:
    """3D coordinates `(length, 3)` of sequence positions start..start+length-1 (position 0 = BOS = (0, 0, 0))."""
    pos = torch.arange(start, start + length)
    idx = (pos - 1).clamp(min=0)  # video code index in raster order
    coords = torch.stack([idx // (height * width) + 1, (idx // width) % height, idx % width], dim=-1)
    coords[pos == 0] = 0
    return coords  # (N, 3)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the last dimension's halves."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x (..., N, d)` by `cos, sin (N, d)` (computed in fp32, returned in x's dtype)."""
    xf = x.float()
    return (xf * cos + rotate_half(xf) * sin).to(x.dtype)


class VideoRoPE(nn.Module):
    """Produces `cos, sin (N, rope_dim)` for a span of sequence positions of a video of `height x width` codes.

    The table for the first `max_positions` positions is computed once (fp32, per device) and sliced; spans
    beyond it are computed on the fly. The table is not a buffer, so `.to(dtype)` never rounds it.
    """

    def __init__(self, rope_dim: int, height: int, width: int, theta: float = 10000.0, max_positions: int = 0) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.dims = split_rope_dims(rope_dim)
        self.max_positions = max_positions
        self.inv = [1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d) for d in self.dims]
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None

    def _compute(self, start: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return self.at(grid_positions(start, length, self.height, self.width), device)

    def at(self, coords: torch.Tensor, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin `(..., rope_dim)` in fp32 on `device` of explicit 3D coordinates `coords (..., 3)` (text
        positions of the understanding layout, see text_output.py, have their own)."""
        coords = coords.double()
        freqs = torch.cat([coords[..., i : i + 1] * inv for i, inv in enumerate(self.inv)], dim=-1)  # (..., dr / 2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (..., rope_dim)
        device = torch.device("cpu") if device is None else device
        return emb.cos().float().to(device), emb.sin().float().to(device)

    def forward(self, start: int, length: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for positions start..start+length-1, each `(N, rope_dim)` in fp32 on `device`."""
        device = torch.device("cpu") if device is None else device
        if start + length > self.max_positions:
            return self._compute(start, length, device)
        if self._table is None or self._table[0].device != device:
            self._table = self._compute(0, self.max_positions, device)
        cos, sin = self._table
        return cos[start : start + length], sin[start : start + length]
