"""Video tensors and files: the one place where uint8 frames and model tensors are converted.

Edges (files, pipeline outputs) hold ``uint8 (B, T, H, W, 3)``; models hold float ``(B, 3, T, H, W)``
in ``[-1, 1]``. Training data is stored losslessly (FFV1 in Matroska, bit-exact RGB); files meant
for people are H.264 yuv420p mp4 (plays in browsers) or GIF.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from worldmodel.io import atomic_path

VIDEO_SUFFIXES = (".mkv", ".mp4", ".webm", ".avi", ".mov", ".gif")


class VideoReadError(ValueError):
    """A file could not be read as a video."""


def is_user_file(path: Path) -> bool:
    """False for hidden files and the leftovers of interrupted writes (``.name.tmp123.mp4``, ``~name``, ``*.part``)."""
    name = path.name
    return not (name.startswith((".", "~")) or name.endswith((".tmp", ".part", ".partial")))


def to_float(video: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Convert ``uint8 (B, T, H, W, 3)`` (or ``(T, H, W, 3)``) to float ``(B, 3, T, H, W)`` in [-1, 1].

    Float input must already be ``(B, 3, T, H, W)``; it is checked and returned unchanged.
    """
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"video must be a torch.Tensor or numpy array, got {type(video).__name__}")
    if video.dtype == torch.uint8:
        if video.ndim == 4:
            video = video.unsqueeze(0)
        if video.ndim != 5 or video.shape[-1] != 3:
            raise ValueError(f"uint8 video must have shape (B, T, H, W, 3), got {tuple(video.shape)}")
        return video.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
    if not video.is_floating_point():
        raise TypeError(f"video must be uint8 or floating point, got {video.dtype}")
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"float video must have shape (B, 3, T, H, W) in [-1, 1], got {tuple(video.shape)}")
    if not torch.isfinite(video).all():
        raise ValueError("video contains NaN or infinite values")
    return video


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """Convert float ``(B, 3, T, H, W)`` in [-1, 1] to ``uint8 (B, T, H, W, 3)`` (clamped, rounded)."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected float video (B, 3, T, H, W), got {tuple(video.shape)}")
    x = (video.detach().float().clamp(-1, 1) + 1.0) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous()


def _as_frames(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0 or frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"frames are empty {frames.shape}: a video needs at least one frame of at least 1x1 pixels")
    return frames


def write_video(path: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float = 10.0,
                lossless: bool | None = None) -> Path:
    """Write ``uint8 (T, H, W, 3)`` frames atomically.

    ``lossless`` (default: True for ``.mkv``) writes FFV1 (bit-exact RGB); otherwise H.264 yuv420p
    (``.mp4``, browser-playable; odd sizes are padded to even by repeating the last row/column).
    """
    path = Path(path)
    frames = _as_frames(frames)
    if lossless is None:
        lossless = path.suffix == ".mkv"
    rate = Fraction(fps).limit_denominator(1000)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", options={"fflags": "+bitexact"}) as container:
        if lossless:
            stream = container.add_stream("ffv1", rate=rate)
            stream.pix_fmt = "bgr0"
        else:
            h, w = frames.shape[1:3]
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            stream = container.add_stream("libx264", rate=rate)
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "medium", "movflags": "+faststart"}
        stream.height, stream.width = frames.shape[1:3]
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def expected_frames(container: av.container.InputContainer) -> int | None:
    """Frames the container's header promises for its first video stream (``None`` when it does not say)."""
    stream = container.streams.video[0]
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None and stream.average_rate:
        return round(float(stream.duration * stream.time_base * stream.average_rate))
    if container.duration is not None and stream.average_rate:
        return round(container.duration / av.time_base * float(stream.average_rate))
    return None


def warn_if_truncated(path: Path, found: int, expected: int | None) -> None:
    """Warn, naming the file and the frames found, when fewer frames decoded than the header promises."""
    if expected is not None and found < expected - 1:  # one frame of slack for rounded durations
        warnings.warn(f"{path}: only {found} of the {expected} frames its header lists could be decoded "
                      "(truncated or damaged file)", stacklevel=3)


def _read_pyav(path: Path) -> np.ndarray:
    frames = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: holds no video stream")
        expected = expected_frames(container)
        try:
            for frame in container.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError:
            if not frames:
                raise
    if not frames:
        raise VideoReadError(f"{path}: no video frames could be decoded")
    warn_if_truncated(path, len(frames), expected)
    return np.stack(frames)


def _read_decord(path: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    n = len(reader)
    if n == 0:
        raise VideoReadError(f"{path}: no video frames could be decoded")
    return reader.get_batch(list(range(n))).asnumpy()


def read_video(path: str | os.PathLike, backend: str = "pyav") -> np.ndarray:
    """Read a whole video file as ``uint8 (T, H, W, 3)``.

    ``backend`` is ``"pyav"`` (default, robust) or ``"decord"`` (faster on long files; falls back to
    PyAV when decord fails). Raises :class:`VideoReadError` naming the file when it is missing, empty
    or not a video; warns naming the file and the frames found when it decodes fewer frames than its
    header lists (a truncated file's intact start).
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path}: the file is empty (0 bytes), expected a video")
    if backend not in ("pyav", "decord"):
        raise ValueError(f"backend must be 'pyav' or 'decord', got {backend!r}")
    if backend == "decord":
        try:
            return _read_decord(path)
        except Exception:  # decord is unmaintained: any failure falls back to PyAV
            pass
    try:
        return _read_pyav(path)
    except VideoReadError:
        raise
    except Exception as err:
        raise VideoReadError(f"{path}: could not be decoded as a video ({type(err).__name__}: {err})") from err


def write_gif(path: str | os.PathLike, frames: torch.Tensor | np.ndarray, fps: float = 10.0,
              scale: int = 1) -> Path:
    """Write ``uint8 (T, H, W, 3)`` frames as a looping GIF (nearest-neighbour ``scale`` up)."""
    from PIL import Image

    frames = _as_frames(frames)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(20, round(1000 / fps)), loop=0)
    return Path(path)


def side_by_side(*videos: torch.Tensor | np.ndarray, gap: int = 2) -> np.ndarray:
    """Place ``uint8 (T, H, W, 3)`` videos next to each other (white gap); shorter ones hold their last frame."""
    clips = [_as_frames(v) for v in videos]
    t = max(c.shape[0] for c in clips)
    h = max(c.shape[1] for c in clips)
    parts = []
    for i, c in enumerate(clips):
        c = np.concatenate([c, np.repeat(c[-1:], t - c.shape[0], axis=0)]) if c.shape[0] < t else c
        c = np.pad(c, ((0, 0), (0, h - c.shape[1]), (0, 0), (0, 0)), constant_values=255)
        parts.append(c)
        if i < len(clips) - 1:
            parts.append(np.full((t, h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=2)
