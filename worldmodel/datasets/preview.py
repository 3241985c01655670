"""Preview of a dataset folder: a grid image (episodes x frames) and a few upscaled mp4s with captions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from worldmodel.datasets.storage import read_manifest
from worldmodel.io import atomic_path, write_text_atomic
from worldmodel.video import read_video, write_video

GAP = 2  # white pixels between grid cells


def frame_grid(videos: list[np.ndarray], columns: int = 9) -> np.ndarray:
    """One row per video ``uint8 (T, H, W, 3)``: ``columns`` frames evenly spaced in time; uint8 image."""
    rows = []
    for video in videos:
        picks = np.linspace(0, len(video) - 1, min(columns, len(video))).round().astype(int)
        cells = [np.pad(video[i], ((GAP, 0), (GAP, 0), (0, 0)), constant_values=255) for i in picks]
        rows.append(np.concatenate(cells, axis=1))  # (H + GAP, cols * (W + GAP), 3)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    grid = np.concatenate(rows, axis=0)
    return np.pad(grid, ((0, GAP), (0, GAP), (0, 0)), constant_values=255)


def write_preview(data: str | os.PathLike, out: str | os.PathLike, rows: int = 8, videos: int = 4,
                  scale: int = 4) -> list[Path]:
    """Write ``out/grid.png`` (first ``rows`` episodes), ``out/<id>.mp4`` for ``videos`` episodes and
    ``out/captions.txt``; return the written paths."""
    from PIL import Image

    if rows < 1 or videos < 0 or scale < 1:
        raise ValueError(f"rows and scale must be >= 1 and videos >= 0, got {rows}, {scale}, {videos}")
    root, out = Path(data), Path(out)
    records = read_manifest(root)[: max(rows, videos)]
    clips = [read_video(root / r["video"]) for r in records]
    written = []
    grid = frame_grid(clips[:rows]).repeat(2, axis=0).repeat(2, axis=1)
    out.mkdir(parents=True, exist_ok=True)
    grid_path = out / "grid.png"
    with atomic_path(grid_path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    written.append(grid_path)
    for record, clip in list(zip(records, clips, strict=True))[:videos]:
        big = clip.repeat(scale, axis=1).repeat(scale, axis=2)
        written.append(write_video(out / f"{record['id']}.mp4", big, fps=record["fps"]))
    text = "".join(f"{r['id']}: {r['caption']}\n" for r in records)
    write_text_atomic(out / "captions.txt", text)
    written.append(out / "captions.txt")
    return written
