"""Colour tracker: per-object centre, radius and visibility from pixels, sub-pixel accurate.

Every object of an episode has a known, distinct colour over a known background. Each pixel is
explained as a mix of two of those colours: the pair whose segment in RGB space passes closest to
the pixel wins (object-background pairs first; object-object pairs only for pixels no
object-background mix explains), and the mix weight is the pixel's coverage by each of the two.
Anti-aliased edges therefore carry fractional coverage, and

- only the largest connected blob of each object's coverage counts,
- centre = coverage-weighted centroid of the pixel centres (pixel ``(i, j)`` is at ``(x, y) = (j, i)``),
- radius = ``sqrt(area / pi - 1/12)`` with area = total coverage (a disc whose edge ramps linearly
  over one pixel, as the renderer draws it, covers ``pi r^2 + pi/12``),
- present = area of at least ``min_area`` pixels; fully visible = present and no coverage on the
  frame's border rows or columns (PhyWorld measures only fully visible frames).

Pixels further than ``max_residual`` (RGB distance) from every pair are left unexplained (no object).
The default is loose (120) because lossy video smears colour at edges (H.264 yuv420p of a render
moves edge pixels up to ~60 off the pair's segment); stray pixels are handled by the blob rule and
coverage below ``min_coverage`` is treated as noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import ndimage

from worldmodel.datasets.palette import BACKGROUND


@dataclass
class Tracks:
    """Per-frame, per-object measurements of one video (``T`` frames, ``N`` objects)."""

    centers: np.ndarray  # (T, N, 2) float x, y in pixels (NaN where not present)
    radii: np.ndarray  # (T, N) float pixels (NaN where not present)
    areas: np.ndarray  # (T, N) float coverage in pixels
    present: np.ndarray  # (T, N) bool
    visible: np.ndarray  # (T, N) bool: present and not touching the frame border
    masks: np.ndarray  # (T, N, H, W) bool: coverage >= 0.5

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return self.centers.shape[0]


def coverage_maps(frames: np.ndarray, colors: np.ndarray, background: tuple[int, int, int] = BACKGROUND,
                  max_residual: float = 120.0, min_coverage: float = 0.04,
                  background_tolerance: float = 12.0) -> np.ndarray:
    """Per-object coverage in [0, 1] of every pixel: float32 ``(T, N, H, W)``.

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        colors: ``(N, 3)`` RGB of the objects (distinct).
        background: RGB of the background.
        max_residual: pixels further than this from every two-colour mix get no coverage.
        min_coverage: coverage below this is treated as noise (set to 0).
        background_tolerance: a pixel within this distance of an object-background mix is one (a grey
            edge of a white ball is not read as a red-cyan mix).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    colors = np.asarray(colors, dtype=np.float32).reshape(-1, 3)
    n = len(colors)
    pixels = frames.astype(np.float32)  # (T, H, W, 3)
    anchors = np.concatenate([np.asarray(background, np.float32)[None], colors])  # (N + 1, 3), 0 = background
    best_res = np.full(frames.shape[:3], np.inf, np.float32)  # (T, H, W)
    best_pair = np.zeros(frames.shape[:3], np.int64)
    best_mix = np.zeros(frames.shape[:3], np.float32)
    pairs = list(combinations(range(n + 1), 2))  # background pairs (0, k) come first
    for p, (u, v) in enumerate(pairs):
        d = anchors[v] - anchors[u]  # (3,)
        rel = pixels - anchors[u]  # (T, H, W, 3)
        mix = np.clip(rel @ d / float(d @ d), 0.0, 1.0)  # (T, H, W) weight of anchor v
        res = np.linalg.norm(rel - mix[..., None] * d, axis=-1)  # (T, H, W)
        better = res < best_res
        if u > 0:  # two objects mix only where they touch: never when a background mix explains the pixel
            better &= best_res > background_tolerance
        best_res[better], best_pair[better], best_mix[better] = res[better], p, mix[better]
    cover = np.zeros((frames.shape[0], n + 1, *frames.shape[1:3]), np.float32)  # (T, N + 1, H, W)
    explained = best_res <= max_residual
    for p, (u, v) in enumerate(pairs):
        sel = (best_pair == p) & explained  # (T, H, W)
        cover[:, u][sel] = 1.0 - best_mix[sel]
        cover[:, v][sel] = best_mix[sel]
    cover[cover < min_coverage] = 0.0  # noise in generated videos must not add up over the whole frame
    return cover[:, 1:]


def keep_largest_blob(cover: np.ndarray) -> np.ndarray:
    """Zero every 8-connected blob of each ``(T, N, H, W)`` coverage map except the one with most coverage.

    Stray pixels (where the edges of two other balls meet, or artefacts) then never pull a centre.
    """
    out = np.zeros_like(cover)
    structure = np.ones((3, 3), bool)
    for t, k in np.ndindex(*cover.shape[:2]):
        labels, count = ndimage.label(cover[t, k] > 0, structure=structure)
        if count == 0:
            continue
        mass = ndimage.sum_labels(cover[t, k], labels, index=np.arange(1, count + 1))
        keep = labels == 1 + int(np.argmax(mass))
        out[t, k][keep] = cover[t, k][keep]
    return out


def track_objects(frames: np.ndarray, colors: np.ndarray, background: tuple[int, int, int] = BACKGROUND,
                  min_area: float = 2.0, max_residual: float = 120.0) -> Tracks:
    """Track objects of known colours in uint8 ``(T, H, W, 3)`` frames (see the module docstring)."""
    cover = keep_largest_blob(coverage_maps(frames, colors, background, max_residual))  # (T, N, H, W)
    _, _, h, w = cover.shape
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    area = cover.sum(axis=(2, 3), dtype=np.float64)  # (T, N)
    present = area >= min_area
    safe = np.where(present, area, 1.0)
    cx = np.einsum("tnhw,w->tn", cover, xs, dtype=np.float64) / safe
    cy = np.einsum("tnhw,h->tn", cover, ys, dtype=np.float64) / safe
    centers = np.where(present[..., None], np.stack([cx, cy], axis=-1), np.nan)  # (T, N, 2)
    radii = np.where(present, np.sqrt(np.clip(area / np.pi - 1.0 / 12.0, 0.0, None)), np.nan)
    edge = np.zeros((h, w), bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    touches = (cover[..., edge] > 0.1).any(axis=-1)  # (T, N)
    return Tracks(centers, radii, area, present, present & ~touches, cover >= 0.5)


def track_episode(frames: np.ndarray, annotation: dict) -> Tracks:
    """Track the objects named in an episode annotation (their ``rgb`` colours) in ``frames``."""
    colors = np.array([o["rgb"] for o in annotation["objects"]], dtype=np.float32).reshape(-1, 3)
    return track_objects(frames, colors)
