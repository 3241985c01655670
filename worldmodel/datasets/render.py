"""Anti-aliased disc renderer: vectorised numpy, ``uint8 (T, H, W, 3)``.

Pixel convention (shared with the annotations): pixel ``(row i, column j)`` has its centre at
``(x, y) = (j, i)`` in pixel units, origin top-left, y down. A disc's coverage of a pixel is the
analytic approximation ``clip(r - d + 0.5, 0, 1)`` where ``d`` is the distance from the pixel centre
to the disc centre, so a mask thresholded at half coverage is the set of pixel centres inside the
disc and its centroid is the disc centre (up to sampling).
"""

from __future__ import annotations

import math

import numpy as np

from worldmodel.datasets.palette import BACKGROUND


def render_discs(
    centers: np.ndarray,
    radii: np.ndarray,
    colors: np.ndarray,
    height: int,
    width: int,
    background: tuple[int, int, int] = BACKGROUND,
) -> np.ndarray:
    """Draw discs over a plain background.

    Args:
        centers: float ``(T, N, 2)`` disc centres ``(x, y)`` in pixels for each frame and object.
        radii: float ``(N,)`` radii in pixels.
        colors: ``(N, 3)`` RGB in [0, 255]; later objects are drawn over earlier ones.
        height, width: frame size in pixels.
        background: RGB of the background.

    Returns:
        ``uint8 (T, H, W, 3)`` frames.
    """
    centers = np.asarray(centers, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    colors = np.asarray(colors, dtype=np.float32)
    if centers.ndim != 3 or centers.shape[-1] != 2:
        raise ValueError(f"centers must have shape (T, N, 2), got {centers.shape}")
    t, n = centers.shape[:2]
    if radii.shape != (n,) or colors.shape != (n, 3):
        raise ValueError(f"radii must be ({n},) and colors ({n}, 3), got {radii.shape} and {colors.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    pad = int(math.ceil(radii.max() + 1.0)) if n else 0  # pixels beyond r + 0.5 get no coverage
    margin = 2 * pad  # a clamped centre lies at most pad outside the frame, its patch 2 * pad
    canvas_h, canvas_w = height + 2 * margin, width + 2 * margin
    frame = np.tile(np.asarray(background, dtype=np.float32), canvas_h * canvas_w).reshape(canvas_h, canvas_w, 3)
    image = np.repeat(frame[None], t, axis=0)  # (T, H + 2m, W + 2m, 3) padded canvas (tile+repeat: fast fill)
    frame_idx = np.arange(t)[:, None, None]  # (T, 1, 1)
    offsets = np.arange(-pad, pad + 1)  # (side,) every disc fits in a (side, side) patch around its nearest pixel
    for k in range(n):
        # (T,) far-away discs are clamped to pad pixels outside the frame, where they stay invisible
        cx = np.clip(centers[:, k, 0], -pad, width - 1 + pad)
        cy = np.clip(centers[:, k, 1], -pad, height - 1 + pad)
        px, py = np.rint(cx).astype(np.int64), np.rint(cy).astype(np.int64)  # (T,) nearest pixel
        cols = px[:, None] + offsets  # (T, side)
        rows = py[:, None] + offsets  # (T, side)
        dx = (cols - cx[:, None]).astype(np.float32)[:, None, :]  # (T, 1, side)
        dy = (rows - cy[:, None]).astype(np.float32)[:, :, None]  # (T, side, 1)
        alpha = np.clip(np.float32(radii[k] + 0.5) - np.sqrt(dx * dx + dy * dy), 0.0, 1.0)  # (T, side, side)
        index = (frame_idx, rows[:, :, None] + margin, cols[:, None, :] + margin)
        patch = image[index]  # (T, side, side, 3)
        image[index] = patch + alpha[..., None] * (colors[k] - patch)
    return np.rint(image[:, margin : margin + height, margin : margin + width]).astype(np.uint8)
