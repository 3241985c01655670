"""Files for people to look at: a video or GIF by suffix, and a grid of several videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from worldmodel.video import side_by_side, write_gif, write_video

EXPORT_SUFFIXES = (".mp4", ".gif", ".mkv")


def video_grid(videos: np.ndarray | torch.Tensor, columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile ``uint8 (N, T, H, W, 3)`` videos into one ``(T, H', W', 3)`` video, ``columns`` per row, white gaps."""
    videos = videos.detach().cpu().numpy() if isinstance(videos, torch.Tensor) else np.asarray(videos)
    if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
        raise ValueError(f"videos must be uint8 (N, T, H, W, 3), got {videos.dtype} {videos.shape}")
    n = videos.shape[0]
    columns = min(n, columns or int(np.ceil(np.sqrt(n))))
    blank = np.full_like(videos[0], 255)
    rows = []
    for start in range(0, n, columns):
        row = list(videos[start:start + columns])
        row += [blank] * (columns - len(row))
        rows.append(side_by_side(*row, gap=gap))
    t, _, w = rows[0].shape[:3]
    separator = np.full((t, gap, w, 3), 255, np.uint8)
    parts = [part for row in rows for part in (row, separator)][:-1]
    return np.concatenate(parts, axis=1)


def check_output_path(path: str | os.PathLike) -> Path:
    """Raise a clear error unless ``path`` ends in a suffix :func:`save_video` can write."""
    path = Path(path)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise ValueError(f"output file {path} must end in one of {', '.join(EXPORT_SUFFIXES)}")
    return path


def save_video(path: str | os.PathLike, frames: np.ndarray | torch.Tensor, fps: float = 10.0,
               gif_scale: int = 1) -> Path:
    """Write ``uint8 (T, H, W, 3)`` frames by suffix: ``.mp4`` (H.264 yuv420p, plays in browsers), ``.gif``
    (looping, ``gif_scale`` times larger), ``.mkv`` (lossless FFV1). Atomic."""
    path = check_output_path(path)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if path.suffix.lower() == ".gif":
        return write_gif(path, frames, fps=fps, scale=gif_scale)
    return write_video(path, frames, fps=fps)
