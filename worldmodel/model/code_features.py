"""What the tokenizer draws for each code, as features the world model can read and extrapolate.

A world model sees a code as an index: to continue a ball's motion it has to learn, for each of thousands of codes,
where in its patch the code puts the ball and which way it moves, from how codes follow one another. The tokenizer's
decoder already knows. :func:`decoder_code_features` asks it once per code: the code is decoded alone on the
background (as a still first latent frame, and as a later latent frame, whose ``tc`` frames show motion), and each
decoded view is summed up by the mass, centroid (and its square), and colour of what differs from the background,
beside the code's own quantizer latent. :class:`CodeFeatures` adds learned projections of that fixed table to the
code embedding and the code head (the head can then score codes by where they put the ball); both projections
start at zero, so adding them to a trained model changes nothing until they train.
"""

from __future__ import annotations

from typing import Any

import torch

from .code_digits import CodeTerms

GRID = 5  # latent patches per side of the probe canvas; the probed code sits in the centre one
PER_VIEW = 8  # mass, centroid x / y, their squares, colour r / g / b


class CodeFeatures(CodeTerms):
    """A fixed `(codebook_size, n_features)` table (saved with the weights; fill it with
    :func:`decoder_code_features`) and its zero-initialised embedding and head projections."""

    def __init__(self, codebook_size: int, n_features: int, d_model: int) -> None:
        super().__init__(n_features, d_model)
        self.register_buffer("table", torch.zeros(codebook_size, n_features))  # (K, F), persistent


def feature_count(temporal_compression: int, latent_dim: int) -> int:
    """Columns of :func:`decoder_code_features` for a tokenizer: one still view, ``tc`` moving views, the latent."""
    return PER_VIEW * (1 + temporal_compression) + latent_dim


def _view_features(diff: torch.Tensor, rgb: torch.Tensor, patch: int) -> torch.Tensor:
    """`diff (n, S, S)` change magnitude and `rgb (n, 3, S, S)` decoded colours of an `S = 3 * patch` crop
    centred on the probed patch -> `(n, PER_VIEW)`: mass per patch pixel, the centroid (in patch units from the
    patch centre; 0 where nothing changed) and colour of the strong part of the change (above half its peak: the
    decoder spreads faint changes around an object, which would pull every centroid to the middle), and the
    centroid's square."""
    size = diff.shape[-1]
    pos = (torch.arange(size, dtype=diff.dtype) + 0.5 - size / 2) / patch  # (S,)
    mass = diff.sum((1, 2)) / patch**2  # (n,)
    strong = torch.relu(diff - diff.amax((1, 2), keepdim=True) / 2)  # (n, S, S)
    safe = strong.sum((1, 2)).clamp_min(1e-6)
    cx = (strong * pos[None, None, :]).sum((1, 2)) / safe
    cy = (strong * pos[None, :, None]).sum((1, 2)) / safe
    colour = (rgb * strong[:, None]).sum((2, 3)) / safe[:, None]  # (n, 3)
    return torch.cat([torch.stack([mass, cx, cy, cx**2, cy**2], 1), colour], 1)


@torch.no_grad()
def decoder_code_features(tokenizer: Any, background: tuple[int, int, int], batch_size: int = 256,
                          standardise: bool = True) -> torch.Tensor:
    """`(codebook_size, feature_count(...))` features of every code of `tokenizer` (a `VideoTokenizer`), each code
    decoded alone on a `background`-coloured canvas. Unless `standardise` is False, columns are standardised over
    the codes, clipped to 3 standard deviations and divided by the number of columns: Adam moves every entry of the
    projections by about the learning rate per step, so a row summing to about as much as one embedding row keeps
    a fine-tune's first steps from swinging every logit (unscaled, three steps moved them by up to 17)."""
    tc = tokenizer.config.temporal_compression
    patch = tokenizer.config.spatial_compression
    size, centre = GRID * patch, GRID // 2
    blank = torch.tensor(background, dtype=torch.uint8).expand(1, 1 + tc, size, size, 3)  # (1, T, H, W, 3)
    bg_codes = tokenizer.encode(blank).cpu()  # (1, 2, GRID, GRID)
    bg_video = tokenizer.decode(bg_codes).float().cpu()  # (1, 3, 1 + tc, H, W)
    crop = slice((centre - 1) * patch, (centre + 2) * patch)
    rows = []
    for start in range(0, tokenizer.codebook_size, batch_size):
        codes = torch.arange(start, min(start + batch_size, tokenizer.codebook_size))
        n = len(codes)
        still = bg_codes[:, :1].repeat(n, 1, 1, 1)
        still[:, 0, centre, centre] = codes
        moving = bg_codes.repeat(n, 1, 1, 1)
        moving[:, 1, centre, centre] = codes
        views = torch.cat([tokenizer.decode(still).float().cpu(),
                           tokenizer.decode(moving).float().cpu()[:, :, 1:]], 2)  # (n, 3, 1 + tc, H, W)
        views = views[..., crop, crop]
        diff = (views - bg_video[..., crop, crop]).abs().sum(1)  # (n, 1 + tc, S, S)
        per_view = [_view_features(diff[:, f], views[:, :, f], patch) for f in range(1 + tc)]
        latent = tokenizer.quantizer.indices_to_latents(codes.view(n, 1, 1, 1).to(tokenizer.device))
        rows.append(torch.cat([*per_view, latent.float().cpu().flatten(1)], 1))
    table = torch.cat(rows)  # (K, F)
    if standardise:
        table = ((table - table.mean(0)) / table.std(0).clamp_min(1e-6)).clamp(-3, 3) / table.shape[1]
    return table
