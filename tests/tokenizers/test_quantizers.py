"""FSQ and VQ-EMA invariants: indices -> latents -> indices, codebook statistics, EMA and dead-code restart."""

import math

import pytest
import torch

from worldmodel.tokenizers.quantizers import FSQ, VectorQuantizerEMA, code_statistics


def test_fsq_indices_latents_round_trip_and_full_codebook():
    fsq = FSQ([8, 5, 3])
    assert fsq.codebook_size == 120 and fsq.dim == 3
    z = torch.randn(4, 3, 5, 6, 6, generator=torch.Generator().manual_seed(0)) * 3
    out = fsq(z)
    assert out.indices.shape == (4, 5, 6, 6) and out.indices.dtype == torch.long
    assert torch.equal(fsq.indices_to_latents(out.indices), out.latents)
    # every index maps to a distinct latent vector, and quantizing that vector's pre-image gives the index back
    every = torch.arange(fsq.codebook_size).view(1, -1, 1, 1)  # (1, K, 1, 1) as (B, t, h, w)
    latents = fsq.indices_to_latents(every)  # (1, D, K, 1, 1)
    assert latents.abs().max() <= 1.0
    assert torch.unique(latents.squeeze(-1).squeeze(-1)[0].t(), dim=0).shape[0] == fsq.codebook_size
    half_width = torch.tensor([4.0, 2.0, 1.0]).view(1, 3, 1, 1, 1)
    levels = torch.tensor([8.0, 5.0, 3.0]).view(1, 3, 1, 1, 1)
    half = (levels - 1) * (1 + fsq.eps) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0)
    pre_image = torch.atanh((latents * half_width + offset) / half) - torch.atanh(offset / half)
    assert torch.equal(fsq(pre_image).indices, every)


def test_fsq_straight_through_gradient_and_usage():
    fsq = FSQ([4, 4])
    z = (torch.randn(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2).requires_grad_()
    out = fsq(z)
    out.latents.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert out.usage == 1.0  # 1536 draws over 16 codes hit them all
    assert 1.0 < out.perplexity <= 16.0
    assert out.loss == 0


def test_fsq_rejects_bad_levels():
    with pytest.raises(ValueError, match="levels"):
        FSQ([8, 1])


def test_code_statistics_uniform_and_single():
    usage, perplexity = code_statistics(torch.arange(8).repeat(3), 16)
    assert usage == 0.5 and math.isclose(float(perplexity), 8.0, rel_tol=1e-5)
    usage, perplexity = code_statistics(torch.zeros(10, dtype=torch.long), 4)
    assert usage == 0.25 and math.isclose(float(perplexity), 1.0, rel_tol=1e-5)


def _clustered(n: int, centers: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, centers.shape[0], (n,), generator=g)
    return centers[picks] + 0.01 * torch.randn(n, centers.shape[1], generator=g)  # (n, D)


def test_vq_round_trip_and_eval_does_not_update():
    vq = VectorQuantizerEMA(32, 4, seed=0).eval()
    z = torch.randn(2, 4, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    before = vq.embed.clone()
    out = vq(z)
    assert torch.equal(vq.embed, before)
    assert torch.equal(vq.indices_to_latents(out.indices), out.latents)
    # the chosen code is the nearest one
    flat = z.movedim(1, -1).reshape(-1, 4)
    assert torch.equal(out.indices.reshape(-1), torch.cdist(flat, vq.embed).argmin(1))


def test_vq_ema_dead_code_restart_reaches_every_cluster():
    centers = torch.randn(8, 4, generator=torch.Generator().manual_seed(3)) * 3 + 50.0  # far from the init codebook
    vq = VectorQuantizerEMA(16, 4, decay=0.8, dead_threshold=0.05, seed=0).train()
    losses = []
    for step in range(150):
        z = _clustered(512, centers, seed=step).t().reshape(1, 4, 512, 1, 1)
        losses.append(float(vq(z).loss))
    assert int(vq.restarts) > 0
    vq.eval()
    out = vq(_clustered(2048, centers, seed=999).t().reshape(1, 4, 2048, 1, 1))
    assert float(out.loss) < 1e-3 < losses[0]  # every cluster owns a code: only the 0.01 noise is left
    assert out.usage >= 0.5


def test_vq_is_deterministic_for_a_seed():
    z = torch.randn(1, 4, 64, 1, 1, generator=torch.Generator().manual_seed(4)) + 20
    runs = []
    for _ in range(2):
        vq = VectorQuantizerEMA(16, 4, seed=7, dead_threshold=0.5).train()
        for _ in range(5):
            vq(z)
        runs.append(vq.embed.clone())
    assert torch.equal(runs[0], runs[1])
