"""``VideoFolderDataset``: fixed-length, square clips from any folder of user videos.

Videos: every ``.mp4``, ``.webm``, ``.avi``, ``.mkv`` or ``.mov`` under the folder (recursively).
Captions, first match wins: a ``captions.jsonl`` at the folder root with lines
``{"video": "<path relative to the folder>", "caption": "..."}``; a ``.txt`` sidecar with the same
stem as the video; otherwise the empty caption (unconditional).
Each clip is ``frames`` consecutive frames from a start drawn from ``seed`` and the index, resized
(shorter side to ``size``, antialiased) and centre-cropped with ``torchvision.transforms.v2``.
Videos shorter than ``frames`` are skipped like unreadable ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms import v2

from worldmodel.datasets.physics import SkippingDataset
from worldmodel.video import VideoReadError, is_user_file

FOLDER_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov")
CAPTIONS_FILE = "captions.jsonl"


def read_captions(path: Path) -> dict[str, str]:
    """``{video path relative to the folder: caption}`` from a JSON-lines captions file (empty when it is missing)."""
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            captions[str(row["video"])] = str(row["caption"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}:{number}: expected a JSON object with 'video' and 'caption'") from err
    return captions


def read_clip(path: Path, start_fraction: float, frames: int) -> np.ndarray:
    """Read ``frames`` consecutive frames ``uint8 (frames, H, W, 3)``; the start is a fraction of the free range.

    decord (random access) first; PyAV (decodes from the start) when decord cannot read the file.
    """
    if not path.is_file() or path.stat().st_size == 0:
        raise VideoReadError(f"{path}: missing or empty file, expected a video")
    try:
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        total = len(reader)
        if total >= frames:
            start = int(start_fraction * (total - frames + 1))
            return reader.get_batch(list(range(start, start + frames))).asnumpy()
    except Exception:  # decord is unmaintained: any failure falls back to PyAV
        pass
    return _read_clip_pyav(path, start_fraction, frames)


def _read_clip_pyav(path: Path, start_fraction: float, frames: int) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except Exception as err:
        raise VideoReadError(f"{path}: could not be decoded as a video ({type(err).__name__}: {err})") from err
    if len(decoded) < frames:
        raise VideoReadError(f"{path}: has {len(decoded)} frames, a clip needs {frames}")
    start = int(start_fraction * (len(decoded) - frames + 1))
    return np.stack(decoded[start : start + frames])


class VideoFolderDataset(SkippingDataset):
    """Clips ``{"video": uint8 (frames, size, size, 3), "caption": str, "id": str}`` from a folder of videos.

    Args:
        root: folder of videos (searched recursively).
        frames: clip length.
        size: output height and width (shorter side resized to ``size``, then centre crop).
        seed: clip starts are a function of ``seed`` and the index.
        strict: raise on an unreadable or too-short video instead of skipping it.
    """

    def __init__(self, root: str | os.PathLike, frames: int = 17, size: int = 64, seed: int = 0,
                 strict: bool = False) -> None:
        super().__init__(strict)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: no such folder of videos")
        if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
            raise ValueError(f"frames must be a positive integer, got {frames!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.frames, self.size, self.seed = frames, size, seed
        self.files = sorted(p for p in self.root.rglob("*")
                            if p.suffix.lower() in FOLDER_SUFFIXES and p.is_file() and is_user_file(p))
        if not self.files:
            raise ValueError(f"{self.root}: no videos found (expected {', '.join(FOLDER_SUFFIXES)} files)")
        self.captions = read_captions(self.root / CAPTIONS_FILE)
        self.transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.files)

    def caption(self, index: int) -> str:
        """Caption of video ``index`` (captions.jsonl, then a .txt sidecar, else empty)."""
        path = self.files[index]
        rel = path.relative_to(self.root).as_posix()
        if rel in self.captions:
            return self.captions[rel]
        sidecar = path.with_suffix(".txt")
        return sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else ""

    def load(self, index: int) -> dict[str, Any]:
        """Read, resize and crop one clip."""
        start_fraction = float(np.random.default_rng([self.seed, index]).random())
        clip = read_clip(self.files[index], start_fraction, self.frames)  # (T, H, W, 3)
        video = torch.from_numpy(clip).permute(0, 3, 1, 2)  # (T, 3, H, W)
        video = self.transform(video).permute(0, 2, 3, 1).contiguous()  # (T, size, size, 3)
        ident = self.files[index].relative_to(self.root).as_posix()
        return {"video": video, "caption": self.caption(index), "id": ident}
