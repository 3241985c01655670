"""Causal 3D convolution building blocks of the video tokenizer.

Causal in time everywhere: a convolution pads only the past (by repeating the first frame), the
normalisation is per frame, and resampling keeps the first frame on its own, so that frame ``k`` of
the output depends only on frames ``<= k`` of the input and a one-frame video is a valid input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv3d(nn.Module):
    """3D convolution that pads the past with the first frame and the borders with edge pixels.

    With temporal stride 2 the output frame ``j`` sees input frames ``2j-2 .. 2j``; frame 0 sees only
    frame 0 (its past is padding), so ``1 + 2k`` frames become ``1 + k``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 stride: tuple[int, int] = (1, 1)) -> None:
        super().__init__()
        time_stride, space_stride = stride
        self.time_pad = kernel_size - 1
        self.space_pad = kernel_size // 2
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size,
                              stride=(time_stride, space_stride, space_stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T, H, W) -> (B, C', T', H', W')``."""
        p = self.space_pad
        if self.time_pad or p:
            x = F.pad(x, (p, p, p, p, self.time_pad, 0), mode="replicate")
        return self.conv(x)


class ChannelRMSNorm(nn.Module):
    """RMS normalisation over channels at every voxel (no statistics across time, so it stays causal)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T, H, W)`` normalised over ``C``."""
        rms = x.float().pow(2).mean(1, keepdim=True).add(self.eps).rsqrt()  # (B, 1, T, H, W)
        return (x.float() * rms).to(x.dtype) * self.weight.view(1, -1, 1, 1, 1).to(x.dtype)


class FrameGroupNorm(nn.Module):
    """GroupNorm computed separately for every frame (statistics over channels-in-group x H x W).

    Frames never share statistics, so the normalisation stays causal in time.
    """

    def __init__(self, channels: int, groups: int = 8, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(groups, channels), channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T, H, W)`` normalised per frame."""
        b, c, t, h, w = x.shape
        y = self.norm(x.transpose(1, 2).reshape(b * t, c, h, w))  # (B * T, C, H, W)
        return y.view(b, t, c, h, w).transpose(1, 2)


def make_norm(kind: str, channels: int) -> nn.Module:
    """The tokenizer's normalisation layer: ``"group"`` (per-frame GroupNorm) or ``"rms"`` (per-voxel RMSNorm)."""
    if kind == "group":
        return FrameGroupNorm(channels)
    if kind == "rms":
        return ChannelRMSNorm(channels)
    raise ValueError(f"norm must be 'group' or 'rms', got {kind!r}")


class ResBlock(nn.Module):
    """Pre-norm residual block: (norm, SiLU, causal conv) twice, plus a 1x1x1 skip when channels change."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "group") -> None:
        super().__init__()
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = CausalConv3d(in_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)
        self.conv2 = CausalConv3d(out_channels, out_channels)
        nn.init.zeros_(self.conv2.conv.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.conv.bias)
        self.skip = nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T, H, W) -> (B, C', T, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Downsample(nn.Module):
    """Strided causal convolution: halve time (``1 + 2k -> 1 + k``) and/or space."""

    def __init__(self, in_channels: int, out_channels: int, time: bool, space: bool) -> None:
        super().__init__()
        self.conv = CausalConv3d(in_channels, out_channels, stride=(2 if time else 1, 2 if space else 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, T, H, W) -> (B, C', T', H', W')``."""
        return self.conv(x)


class Upsample(nn.Module):
    """Causal convolution to ``C' * rt * rs * rs`` channels, then depth-to-space in time and space.

    In time, latent frame 0 becomes one frame and every later latent frame two (``1 + k -> 1 + 2k``):
    the first of the two frames made from latent frame 0 is dropped, which keeps the decoder causal.
    """

    def __init__(self, in_channels: int, out_channels: int, time: bool, space: bool) -> None:
        super().__init__()
        self.rt, self.rs = (2 if time else 1), (2 if space else 1)
        self.out_channels = out_channels
        self.conv = CausalConv3d(in_channels, out_channels * self.rt * self.rs * self.rs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, t, h, w) -> (B, C', T, H, W)``."""
        x = self.conv(x)  # (B, C' * rt * rs * rs, t, h, w)
        b, _, t, h, w = x.shape
        x = x.view(b, self.out_channels, self.rt, self.rs, self.rs, t, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, self.out_channels, t * self.rt, h * self.rs, w * self.rs)
        return x[:, :, self.rt - 1:]  # drop the duplicate of the first frame


def space_to_depth(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Lossless patchify: ``(B, C, T, H, W) -> (B, C * p * p, T, H / p, W / p)``."""
    if patch == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.view(b, c, t, h // patch, patch, w // patch, patch)
    return x.permute(0, 1, 4, 6, 2, 3, 5).reshape(b, c * patch * patch, t, h // patch, w // patch)


def depth_to_space(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Inverse of :func:`space_to_depth`: ``(B, C * p * p, T, h, w) -> (B, C, T, h * p, w * p)``."""
    if patch == 1:
        return x
    b, cpp, t, h, w = x.shape
    c = cpp // (patch * patch)
    x = x.view(b, c, patch, patch, t, h, w)
    return x.permute(0, 1, 4, 5, 2, 6, 3).reshape(b, c, t, h * patch, w * patch)
