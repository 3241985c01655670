"""Inflated Inception-v1 (I3D), the Kinetics-400 video classifier that FVD measures with.

A PyTorch port of DeepMind's ``kinetics-i3d`` network (the TF-Hub ``i3d-kinetics-400`` model) with
TensorFlow's ``'SAME'`` padding reproduced exactly: convolutions pad with zeros, max-pools pad with
``-inf`` (padding never wins a max), and when the total padding is odd the extra cell goes after
(bottom/right/later), as TensorFlow does. BatchNorm has no scale (Sonnet v1), epsilon 1e-3.

Input ``(B, 3, T, 224, 224)`` in ``[-1, 1]`` with ``T >= 9``; output the 400 Kinetics logits
averaged over time, ``(B, 400)`` — the FVD feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MIN_FRAMES = 9  # after three temporal halvings at least 2 steps must remain for the (2, 7, 7) average pool


def same_padding(sizes: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """TensorFlow ``'SAME'`` padding for ``F.pad`` over the last ``len(sizes)`` dims (last dim first)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(sizes), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d with TF 'SAME' padding, then (optionally) scale-free BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True, activation: bool = True):
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=not batch_norm)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride))
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max-pool with TF 'SAME' padding (padded cells are ``-inf``)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        x = F.pad(x, same_padding(tuple(x.shape[2:]), self.kernel, self.stride), value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four parallel branches (1x1; 1x1->3x3; 1x1->3x3; maxpool->1x1) concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.branch_0 = Unit3D(in_channels, b0)
        self.branch_1 = nn.Sequential(Unit3D(in_channels, b1a), Unit3D(b1a, b1b, (3, 3, 3)))
        self.branch_2 = nn.Sequential(Unit3D(in_channels, b2a), Unit3D(b2a, b2b, (3, 3, 3)))
        self.branch_3 = nn.Sequential(MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(in_channels, b3))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        return torch.cat([self.branch_0(x), self.branch_1(x), self.branch_2(x), self.branch_3(x)], dim=1)


# (name, in_channels, branch widths) of the nine Inception blocks, in order
INCEPTION_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class InceptionI3d(nn.Module):
    """The Kinetics-400 I3D classifier; ``forward`` returns the time-averaged logits ``(B, num_classes)``."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        blocks = {name: InceptionModule(c, w) for name, c, w in INCEPTION_BLOCKS}
        self.layers = nn.ModuleDict({
            "Conv3d_1a_7x7": Unit3D(3, 64, (7, 7, 7), (2, 2, 2)),
            "MaxPool3d_2a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            "Conv3d_2b_1x1": Unit3D(64, 64),
            "Conv3d_2c_3x3": Unit3D(64, 192, (3, 3, 3)),
            "MaxPool3d_3a_3x3": MaxPool3dSame((1, 3, 3), (1, 2, 2)),
            "Mixed_3b": blocks["Mixed_3b"],
            "Mixed_3c": blocks["Mixed_3c"],
            "MaxPool3d_4a_3x3": MaxPool3dSame((3, 3, 3), (2, 2, 2)),
            "Mixed_4b": blocks["Mixed_4b"],
            "Mixed_4c": blocks["Mixed_4c"],
            "Mixed_4d": blocks["Mixed_4d"],
            "Mixed_4e": blocks["Mixed_4e"],
            "Mixed_4f": blocks["Mixed_4f"],
            "MaxPool3d_5a_2x2": MaxPool3dSame((2, 2, 2), (2, 2, 2)),
            "Mixed_5b": blocks["Mixed_5b"],
            "Mixed_5c": blocks["Mixed_5c"],
        })
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, 3, T, 224, 224) in [-1, 1]
        if video.ndim != 5 or video.shape[1] != 3 or video.shape[2] < MIN_FRAMES:
            raise ValueError(f"I3D expects video (B, 3, T>={MIN_FRAMES}, H, W), got {tuple(video.shape)}")
        x = video
        for layer in self.layers.values():
            x = layer(x)
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # (B, 1024, T', 1, 1), 'VALID'
        x = self.logits(x)  # (B, 400, T', 1, 1)
        return x.flatten(2).mean(dim=2)  # (B, 400)
