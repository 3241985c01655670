"""Causal 3D-CNN video tokenizer: video ``(B, T, H, W, 3)`` <-> discrete codes ``(B, t, h, w)``.

Layout (Cosmos-Tokenizer / MAGVIT-v2 family, sized for small CPU budgets)::

    video (B, 3, T, H, W) in [-1, 1]
      -> space-to-depth by patch_size (lossless)            (B, 3 p^2, T, H/p, W/p)
      -> causal conv, then per level: ResBlocks, Downsample  time /2 and/or space /2 per step
      -> ResBlocks, norm, 1x1x1 conv to the quantizer dim    (B, D, t, h, w)
      -> FSQ or VQ-EMA                                       codes (B, t, h, w)
      -> decoder: the mirror image with depth-to-space Upsample, then depth-to-space by patch_size

Temporal compression is causal: the first frame is its own latent frame and every latent frame after
it covers ``temporal_compression`` frames, so ``T = 1 + tc * (t - 1)``; an image is a one-frame video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from worldmodel.pretrained import LocalPretrained
from worldmodel.tokenizers.layers import (
    CausalConv3d,
    Downsample,
    ResBlock,
    Upsample,
    depth_to_space,
    make_norm,
    space_to_depth,
)
from worldmodel.tokenizers.quantizers import FSQ, VectorQuantizerEMA
from worldmodel.video import to_float


@dataclass
class TokenizerOutput:
    """What :meth:`VideoTokenizer.forward` returns."""

    reconstruction: torch.Tensor  # (B, 3, T, H, W), unclamped decoder output
    indices: torch.Tensor  # (B, t, h, w) codes
    quantizer_loss: torch.Tensor  # scalar (VQ commitment; 0 for FSQ)
    usage: torch.Tensor  # scalar: fraction of the codebook used by this batch
    perplexity: torch.Tensor  # scalar: exp(entropy) of this batch's codes


def _log2(value: int, name: str) -> int:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, got {value}")
    return int(math.log2(value))


def _resample_plan(levels: int, time_steps: int, space_steps: int) -> list[tuple[bool, bool]]:
    """Which of the ``levels - 1`` transitions halve time and/or space (both as early as possible)."""
    transitions = levels - 1
    if max(time_steps, space_steps) > transitions:
        raise ValueError(f"{levels} channel levels allow {transitions} halvings, but the compression needs "
                         f"{time_steps} in time and {space_steps} in space: add entries to `channels`")
    return [(i < time_steps, i < space_steps) for i in range(transitions)]


class Encoder(nn.Module):
    """Video ``(B, 3, T, H, W)`` -> continuous latents ``(B, D, t, h, w)``."""

    def __init__(self, channels: list[int], blocks: int, plan: list[tuple[bool, bool]], patch: int,
                 latent_dim: int, norm: str = "group") -> None:
        super().__init__()
        self.patch = patch
        self.conv_in = CausalConv3d(3 * patch * patch, channels[0])
        self.levels = nn.ModuleList()
        for i, (time, space) in enumerate(plan):
            self.levels.append(nn.Sequential(*[ResBlock(channels[i], channels[i], norm) for _ in range(blocks)],
                                             Downsample(channels[i], channels[i + 1], time, space)))
        self.mid = nn.Sequential(*[ResBlock(channels[-1], channels[-1], norm) for _ in range(blocks)])
        self.norm_out = make_norm(norm, channels[-1])
        self.conv_out = nn.Conv3d(channels[-1], latent_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, T, H, W) -> (B, D, t, h, w)``."""
        h = self.conv_in(space_to_depth(x, self.patch))  # (B, C0, T, H/p, W/p)
        for level in self.levels:
            h = level(h)
        h = self.mid(h)  # (B, C_last, t, h, w)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Quantized latents ``(B, D, t, h, w)`` -> video ``(B, 3, T, H, W)``."""

    def __init__(self, channels: list[int], blocks: int, plan: list[tuple[bool, bool]], patch: int,
                 latent_dim: int, norm: str = "group") -> None:
        super().__init__()
        self.patch = patch
        self.conv_in = CausalConv3d(latent_dim, channels[-1])
        self.mid = nn.Sequential(*[ResBlock(channels[-1], channels[-1], norm) for _ in range(blocks)])
        self.levels = nn.ModuleList()
        for i in reversed(range(len(plan))):
            time, space = plan[i]
            self.levels.append(nn.Sequential(Upsample(channels[i + 1], channels[i], time, space),
                                             *[ResBlock(channels[i], channels[i], norm) for _ in range(blocks)]))
        self.norm_out = make_norm(norm, channels[0])
        self.conv_out = CausalConv3d(channels[0], 3 * patch * patch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, D, t, h, w) -> (B, 3, T, H, W)``."""
        h = self.mid(self.conv_in(z))  # (B, C_last, t, h, w)
        for level in self.levels:
            h = level(h)
        return depth_to_space(self.conv_out(F.silu(self.norm_out(h))), self.patch)


class VideoTokenizer(LocalPretrained, ModelMixin, ConfigMixin):
    """Causal spatiotemporal tokenizer with an FSQ or VQ-EMA bottleneck.

    Args:
        temporal_compression: 1, 2 or 4 (any power of two): frames per latent frame after the first.
        spatial_compression: 4, 8 or 16 (any power of two >= ``patch_size``).
        channels: width of each level; ``len(channels) - 1`` halvings are available.
        blocks: residual blocks per level (encoder and decoder).
        patch_size: lossless space-to-depth factor applied first (a power of two).
        quantizer_type: ``"fsq"`` or ``"vq"``.
        fsq_levels: FSQ levels per latent channel (codebook size = their product).
        vq_codebook_size, vq_dim, vq_decay, vq_commitment, vq_dead_threshold, vq_seed: VQ-EMA settings.
        norm: ``"group"`` (per-frame GroupNorm, default) or ``"rms"`` (per-voxel channel RMSNorm).
        canonical_background: in :meth:`encode`, give every latent voxel whose pixels all show the clip's
            plain background colour the code that a still clip of that colour gets there, so that background
            a moving object never touches keeps one code (the convolutions otherwise spread the object into
            its neighbours' codes). A no-op on clips without a dominant plain colour. Off by default.
        background_tolerance: how far (in 0-255 levels, any channel) a pixel may lie from the background
            colour and still count as background.
        background_margin: a voxel keeps its own code when an object pixel lies within this many pixels of it
            (its neighbours' codes help the decoder draw the object's edge).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, temporal_compression: int = 4, spatial_compression: int = 8,
                 channels: tuple[int, ...] = (64, 128, 128), blocks: int = 1, patch_size: int = 4,
                 quantizer_type: str = "fsq", fsq_levels: tuple[int, ...] = (8, 5, 5, 5),
                 vq_codebook_size: int = 1024, vq_dim: int = 8, vq_decay: float = 0.99,
                 vq_commitment: float = 0.25, vq_dead_threshold: float = 1e-2, vq_seed: int = 0,
                 norm: str = "group", canonical_background: bool = False,
                 background_tolerance: float = 3.0, background_margin: int = 0) -> None:
        super().__init__()
        self.set_background_codes(canonical_background, background_tolerance, background_margin)
        time_steps = _log2(temporal_compression, "temporal_compression")
        space_steps = _log2(spatial_compression, "spatial_compression") - _log2(patch_size, "patch_size")
        if space_steps < 0:
            raise ValueError(f"patch_size {patch_size} exceeds spatial_compression {spatial_compression}")
        plan = _resample_plan(len(channels), time_steps, space_steps)
        if quantizer_type == "fsq":
            self.quantizer = FSQ(list(fsq_levels))
        elif quantizer_type == "vq":
            self.quantizer = VectorQuantizerEMA(vq_codebook_size, vq_dim, decay=vq_decay, commitment=vq_commitment,
                                                dead_threshold=vq_dead_threshold, seed=vq_seed)
        else:
            raise ValueError(f"quantizer_type must be 'fsq' or 'vq', got {quantizer_type!r}")
        channels = list(channels)
        self.encoder = Encoder(channels, blocks, plan, patch_size, self.quantizer.dim, norm)
        self.decoder = Decoder(channels, blocks, plan, patch_size, self.quantizer.dim, norm)

    def set_background_codes(self, canonical: bool, tolerance: float = 3.0, margin: int = 0) -> None:
        """Switch canonical background codes in :meth:`encode` on or off (saved with the config)."""
        if tolerance < 0:
            raise ValueError(f"background_tolerance must be >= 0 levels, got {tolerance}")
        if margin < 0 or int(margin) != margin:
            raise ValueError(f"background_margin must be a whole number of pixels >= 0, got {margin}")
        self.register_to_config(canonical_background=bool(canonical), background_tolerance=float(tolerance),
                                background_margin=int(margin))

    @property
    def codebook_size(self) -> int:
        """Number of distinct codes."""
        return self.quantizer.codebook_size

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """Code grid ``(t, h, w)`` of a ``frames x height x width`` video (raises on invalid sizes)."""
        tc, sc = self.config.temporal_compression, self.config.spatial_compression
        if frames < 1 or (frames - 1) % tc:
            raise ValueError(f"video has {frames} frames, expected 1 + {tc} * k frames (e.g. 1, {1 + tc}, "
                             f"{1 + 2 * tc}, {1 + 4 * tc}) for temporal compression {tc}")
        if height % sc or width % sc or height < sc or width < sc:
            raise ValueError(f"video size {height}x{width} is not divisible by the spatial compression {sc}")
        return 1 + (frames - 1) // tc, height // sc, width // sc

    def num_frames(self, t: int) -> int:
        """Number of video frames decoded from ``t`` latent frames: ``1 + tc * (t - 1)``."""
        if t < 1:
            raise ValueError(f"latent frame count must be >= 1, got {t}")
        return 1 + self.config.temporal_compression * (t - 1)

    def preprocess(self, video: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Validate and convert ``uint8 (B, T, H, W, 3)`` or float ``(B, 3, T, H, W)`` to model input."""
        x = to_float(video)  # (B, 3, T, H, W), checks channels and NaN
        self.latent_shape(*x.shape[2:])
        return x.to(device=self.device, dtype=self.dtype)

    def forward(self, video: torch.Tensor | np.ndarray) -> TokenizerOutput:
        """Encode, quantize and decode ``video``: reconstruction, codes, quantizer loss and code statistics."""
        x = self.preprocess(video)
        q = self.quantizer(self.encoder(x))
        reconstruction = self.decoder(q.latents.to(x.dtype))
        return TokenizerOutput(reconstruction, q.indices, q.loss, q.usage, q.perplexity)

    @torch.no_grad()
    def encode(self, video: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Codes ``LongTensor (B, t, h, w)`` of ``uint8 (B, T, H, W, 3)`` or float ``(B, 3, T, H, W)`` video."""
        x = self.preprocess(video)
        was_training = self.quantizer.training
        self.quantizer.eval()  # never update a VQ codebook while encoding
        try:
            codes = self.quantizer(self.encoder(x)).indices  # (B, t, h, w)
            if self.config.canonical_background:
                codes = self._canonical_background(x, codes)
            return codes
        finally:
            self.quantizer.train(was_training)

    def _canonical_background(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``codes (B, t, h, w)`` with every all-background voxel of ``x (B, 3, T, H, W)`` set to its still code."""
        colour = x.flatten(2).median(dim=2).values  # (B, 3) the clip's most common colour, for a plain background
        tol = self.config.background_tolerance / 127.5
        near = (x - colour[:, :, None, None, None]).abs().amax(dim=1) <= tol  # (B, T, H, W) pixel is background
        plain = near.float().mean(dim=(1, 2, 3)) >= 0.5  # (B,) most pixels show one plain colour
        if not bool(plain.any()):
            return codes
        sc, tc = self.config.spatial_compression, self.config.temporal_compression
        objects = (~near).float()  # (B, T, H, W) as channels T: pooled per frame
        m = self.config.background_margin
        if m:
            objects = F.max_pool2d(objects, 2 * m + 1, stride=1, padding=m)  # grown by the margin
        patch_clear = F.max_pool2d(objects, sc) == 0  # (B, T, h, w) no object pixel in or near the patch
        rest = patch_clear[:, 1:].unflatten(1, (-1, tc)).all(dim=2)  # (B, t - 1, h, w) over each 4-frame group
        clear = torch.cat([patch_clear[:, :1], rest], dim=1) & plain[:, None, None, None]  # (B, t, h, w)
        colours, which = torch.unique(colour, dim=0, return_inverse=True)  # (U, 3), (B,)
        still = colours[:, :, None, None, None].expand(-1, -1, *x.shape[2:])  # (U, 3, T, H, W) still clips
        still_codes = self.quantizer(self.encoder(still.contiguous())).indices[which]  # (B, t, h, w)
        return torch.where(clear, still_codes, codes)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Video ``float (B, 3, T, H, W)`` in [-1, 1] from ``codes (B, t, h, w)``."""
        if codes.ndim != 4 or codes.dtype.is_floating_point:
            raise ValueError(f"codes must be an integer tensor (B, t, h, w), got {codes.dtype} {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size}), got values in "
                             f"[{int(codes.min())}, {int(codes.max())}]")
        latents = self.quantizer.indices_to_latents(codes.to(self.device).long())
        return self.decoder(latents.to(self.dtype)).clamp(-1.0, 1.0)
