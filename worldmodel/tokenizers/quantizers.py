"""Discrete bottlenecks for the video tokenizer: FSQ and VQ with EMA codebook updates.

Both quantizers share one interface so the tokenizer can switch between them by config:

- ``forward(z (B, D, t, h, w)) -> QuantizerOutput`` with the quantized latents (straight-through
  gradients), integer codes ``(B, t, h, w)``, a loss to add to the objective and batch statistics;
- ``indices_to_latents(indices (B, t, h, w)) -> (B, D, t, h, w)``: the exact inverse of the indices;
- ``codebook_size`` and ``dim``.

All quantizer math runs in float32, also under bf16 autocast: rounding and nearest-neighbour search
are precision-sensitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizerOutput:
    """Result of quantizing a latent grid."""

    latents: torch.Tensor  # (B, D, t, h, w) quantized, straight-through gradient to the input
    indices: torch.Tensor  # (B, t, h, w) long
    loss: torch.Tensor  # scalar: commitment loss (VQ) or zero (FSQ)
    usage: torch.Tensor  # scalar: fraction of the codebook used in this batch
    perplexity: torch.Tensor  # scalar: exp(entropy) of the batch's code histogram


def code_statistics(indices: torch.Tensor, codebook_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (usage, perplexity) of a batch of code ``indices`` over a codebook of ``codebook_size``."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size).float()  # (K,)
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    usage = (counts > 0).float().mean()
    return usage, entropy.exp()


def straight_through(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` in the forward pass, the identity's gradient to ``x`` in the backward pass.

    Without autograd it returns ``target`` itself, so inference gives exactly the codebook values.
    """
    if not x.requires_grad:
        return target
    return x + (target - x).detach()


class FSQ(nn.Module):
    """Finite Scalar Quantization (Mentzer et al. 2023): each latent channel is bounded and rounded.

    Channel ``i`` takes ``levels[i]`` values, so the implicit codebook has ``prod(levels)`` entries and
    every entry is reachable: no codebook collapse, no auxiliary loss.
    """

    def __init__(self, levels: list[int], eps: float = 1e-3) -> None:
        super().__init__()
        if not levels or any(int(level) < 2 for level in levels):
            raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {levels}")
        levels_t = torch.tensor([int(level) for level in levels], dtype=torch.long)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), levels_t[:-1]]), dim=0)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)
        self.eps = eps
        self.dim = len(levels)
        self.codebook_size = int(math.prod(int(level) for level in levels))

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash channel ``i`` of ``z (B, t, h, w, D)`` into an interval that rounds to ``levels[i]`` values."""
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 + self.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z (B, D, t, h, w)``."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float().movedim(1, -1)  # (B, t, h, w, D)
            bounded = self._bound(z)
            q = straight_through(bounded, bounded.round())  # integers in [-L//2, (L-1)//2], float
            half_width = (self.levels // 2).to(q.dtype)
            indices = ((q.detach() + half_width).long() * self.basis).sum(-1)  # (B, t, h, w)
            latents = (q / half_width).movedim(-1, 1)  # (B, D, t, h, w) in [-1, 1]
            usage, perplexity = code_statistics(indices, self.codebook_size)
        return QuantizerOutput(latents, indices, z.new_zeros(()), usage, perplexity)

    def indices_to_latents(self, indices: torch.Tensor) -> torch.Tensor:
        """Map code ``indices (B, t, h, w)`` to quantized latents ``(B, D, t, h, w)``."""
        digits = (indices.unsqueeze(-1) // self.basis) % self.levels  # (B, t, h, w, D)
        half_width = self.levels // 2
        return ((digits - half_width).float() / half_width.float()).movedim(-1, 1)


class VectorQuantizerEMA(nn.Module):
    """Vector quantization with an EMA-updated codebook, commitment loss and dead-code restart.

    The codebook moves towards the mean of the encoder outputs assigned to each code (van den Oord et
    al. 2017, appendix); codes whose EMA assignment count falls below ``dead_threshold`` are restarted
    on random encoder outputs of the current batch. Statistics are summed over processes when
    training is distributed, so every rank keeps the same codebook.
    """

    def __init__(self, codebook_size: int, dim: int, decay: float = 0.99, commitment: float = 0.25,
                 dead_threshold: float = 1e-2, seed: int = 0, eps: float = 1e-5) -> None:
        super().__init__()
        if codebook_size < 2 or dim < 1:
            raise ValueError(f"VQ needs codebook_size >= 2 and dim >= 1, got {codebook_size} and {dim}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"VQ decay must be in (0, 1), got {decay}")
        generator = torch.Generator().manual_seed(seed)
        embed = torch.randn(codebook_size, dim, generator=generator)
        self.register_buffer("embed", embed)  # (K, D)
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # (K,) EMA count
        self.register_buffer("embed_sum", embed.clone())  # (K, D) EMA sum of assigned vectors
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))
        self.codebook_size = codebook_size
        self.dim = dim
        self.decay = decay
        self.commitment = commitment
        self.dead_threshold = dead_threshold
        self.eps = eps
        self.seed = seed
        self._generator: torch.Generator | None = None

    def _nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook vector for each row of ``flat (N, D)``."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed.t()
                     + self.embed.pow(2).sum(1)[None])  # (N, K)
        return distances.argmin(1)

    def _rng(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed + int(self.restarts))
        return self._generator

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """EMA update of the codebook from ``flat (N, D)`` assigned to ``indices (N,)``; restart dead codes."""
        one_hot = F.one_hot(indices, self.codebook_size).type(flat.dtype)  # (N, K)
        counts = one_hot.sum(0)  # (K,)
        sums = one_hot.t() @ flat  # (K, D)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # Laplace
        self.embed.copy_(self.embed_sum / smoothed.unsqueeze(1))
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            picks = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device, generator=self._rng(flat.device))
            fresh = flat[picks]
            if dist.is_available() and dist.is_initialized():
                dist.broadcast(fresh, src=0)
            self.embed[dead] = fresh
            self.embed_sum[dead] = fresh
            self.cluster_size[dead] = 1.0
            self.restarts += n_dead

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z (B, D, t, h, w)``; in training mode also update the codebook."""
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float().movedim(1, -1)  # (B, t, h, w, D)
            flat = z.reshape(-1, self.dim)  # (N, D)
            indices = self._nearest(flat.detach())  # (N,)
            if self.training:
                self._update(flat.detach(), indices)
            quantized = self.embed[indices].view_as(z)  # (B, t, h, w, D)
            loss = self.commitment * F.mse_loss(z, quantized.detach())
            latents = straight_through(z, quantized).movedim(-1, 1)  # (B, D, t, h, w)
            indices = indices.view(z.shape[:-1])
            usage, perplexity = code_statistics(indices, self.codebook_size)
        return QuantizerOutput(latents, indices, loss, usage, perplexity)

    def indices_to_latents(self, indices: torch.Tensor) -> torch.Tensor:
        """Map code ``indices (B, t, h, w)`` to codebook vectors ``(B, D, t, h, w)``."""
        return self.embed[indices].movedim(-1, 1)
