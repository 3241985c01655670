"""``extract_clips``: cut model-sized training clips from any folder of user videos into a dataset folder.

The output has the layout of ``generate_dataset`` (``manifest.jsonl`` + lossless ``videos/<id>.mkv``), so the
tokenizer trains on it (``PhysicsDataModule(root=...)``) and ``encode_dataset`` caches it like simulator data.
Each video is decoded once as a stream: frames are resampled in time to ``fps``, resized (shorter side to
``size``, antialiased) and centre-cropped, then cut into consecutive clips of ``frames`` frames. Files that
cannot be used are skipped and listed with the reason in ``clips.json``; one bad file never stops the run.
Captions, first match wins: ``captions`` (a JSON-lines file of ``{"video": path relative to the folder,
"caption": ...}``; default ``captions.jsonl`` in the folder), a ``.txt`` sidecar, else none (unconditional).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.datasets.folder import CAPTIONS_FILE, FOLDER_SUFFIXES, read_captions
from worldmodel.datasets.storage import MANIFEST, VIDEO_DIR
from worldmodel.io import write_json_atomic, write_text_atomic
from worldmodel.video import is_user_file, write_video

CLIPS_SETTINGS = "clips.json"


def find_videos(root: Path, exclude: Path | None = None) -> list[Path]:
    """Video files under ``root`` (recursively, sorted), without hidden files, temporaries and ``exclude``."""
    files = []
    for path in sorted(root.rglob("*")):
        if exclude is not None and path.is_relative_to(exclude):
            continue
        if path.suffix.lower() in FOLDER_SUFFIXES and path.is_file() and is_user_file(path):
            files.append(path)
    return files


def _square(image: Any, size: int) -> np.ndarray:
    """A PIL image resized (shorter side to ``size``, antialiased) and centre-cropped -> uint8 ``(size, size, 3)``."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.Resampling.LANCZOS)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)).convert("RGB"))


def read_resampled(path: Path, fps: float, size: int, limit: int) -> np.ndarray:
    """Decode ``path`` as a stream: frames at ``fps`` (nearest earlier frame), square ``size``, at most ``limit``.

    Raises ``ValueError`` naming the file when it holds no decodable video; a file that breaks off part-way
    keeps the frames decoded before the break.
    """
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or fps)
            next_time = None
            try:
                for index, frame in enumerate(container.decode(stream)):
                    time = frame.time if frame.time is not None else index / rate
                    next_time = time if next_time is None else next_time
                    if time + 0.5 / rate < next_time:  # between two output times: drop
                        continue
                    frames.append(_square(frame.to_image(), size))
                    next_time += 1.0 / fps
                    if len(frames) >= limit:
                        break
            except av.error.FFmpegError:
                if not frames:
                    raise
    except av.error.FFmpegError as err:
        raise ValueError(f"{path}: could not be decoded as a video ({type(err).__name__})") from err
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    return np.stack(frames)


def extract_clips(videos: str | os.PathLike, out: str | os.PathLike, frames: int = 17, size: int = 64,
                  fps: float = 10.0, captions: str | os.PathLike | None = None, max_clips_per_video: int = 16,
                  progress: bool = True) -> dict[str, Any]:
    """Cut clips of ``frames`` frames of ``size`` x ``size`` at ``fps`` from every video under ``videos`` into ``out``.

    Re-running with the same settings reuses a finished folder. Returns the settings with ``clips`` (count),
    ``videos`` (files used) and ``skipped`` (``{"file": ..., "reason": ...}`` per unusable file), as written to
    ``out/clips.json``. Raises ``ValueError`` when no clip at all could be made.
    """
    from tqdm import tqdm

    root, out = Path(videos), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of videos")
    if not (isinstance(frames, int) and frames >= 1 and isinstance(size, int) and size >= 8):
        raise ValueError(f"frames must be >= 1 and size >= 8 pixels, got {frames!r} and {size!r}")
    if not (isinstance(fps, int | float) and 0 < fps <= 1000):
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
    captions_path = Path(captions) if captions is not None else root / CAPTIONS_FILE
    if captions is not None and not captions_path.is_file():
        raise FileNotFoundError(f"{captions_path}: no such captions file (expected JSON lines with video, caption)")
    settings = {"videos": str(root.resolve()), "frames": frames, "size": size, "fps": float(fps),
                "captions": str(captions_path.resolve()) if captions_path.is_file() else None,
                "max_clips_per_video": max_clips_per_video}
    done = out / CLIPS_SETTINGS
    if done.is_file() and (out / MANIFEST).is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        if all(record.get(k) == v for k, v in settings.items()):
            return record
    files = find_videos(root, exclude=out.resolve() if out.resolve().is_relative_to(root.resolve()) else None)
    if not files:
        raise ValueError(f"{root}: no videos found (expected {', '.join(FOLDER_SUFFIXES)} files, searched "
                         "recursively)")
    table = read_captions(captions_path) if captions_path.is_file() else {}
    print(f"cutting clips of {frames} frames from {len(files)} videos in {root}: frames are resampled to {fps:g} "
          f"fps, resized (shorter side to {size} px) and centre-cropped to {size}x{size}", flush=True)
    lines, skipped, used = [], [], 0
    bar = tqdm(files, desc="cutting clips", unit="video", disable=not progress)
    for number, path in enumerate(bar):
        rel = path.relative_to(root).as_posix()
        try:
            video = read_resampled(path, fps, size, frames * max_clips_per_video)
        except (ValueError, OSError) as err:
            skipped.append({"file": rel, "reason": str(err).removeprefix(f"{path}: ")})
            continue
        count = len(video) // frames
        if count == 0:
            seconds = math.ceil((frames - 1) / fps * 10) / 10
            skipped.append({"file": rel, "reason": f"{len(video)} frames at {fps:g} fps, a clip needs {frames} "
                                                   f"(at least {seconds:g} s of video)"})
            continue
        used += 1
        sidecar = path.with_suffix(".txt")
        caption = table.get(rel) or (sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else "")
        for k in range(count):
            ident = f"clip_{number:06d}_{k:03d}"
            video_rel = f"{VIDEO_DIR}/{ident}.mkv"
            write_video(out / video_rel, video[k * frames:(k + 1) * frames], fps=fps)
            lines.append({"id": ident, "video": video_rel, "caption": caption, "frames": frames, "height": size,
                          "width": size, "fps": float(fps), "source": rel})
        bar.set_postfix(clips=len(lines))
    bar.close()
    if not lines:
        reasons = "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
        raise ValueError(f"{root}: none of the {len(files)} videos gave a clip of {frames} frames ({reasons})")
    write_text_atomic(out / MANIFEST, "".join(json.dumps(line) + "\n" for line in lines))
    record = {**settings, "clips": len(lines), "videos_used": used, "skipped": skipped}
    write_json_atomic(done, record)
    return record
