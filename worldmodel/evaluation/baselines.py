"""Baselines every model is compared against: copy the last context frame, or extrapolate at constant velocity.

Both see only the context frames (pixels), like a model does; the constant-velocity baseline tracks
the objects in the context with the episode's known colours, keeps each object's last velocity
(frame difference) and redraws the discs with the simulator's renderer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from worldmodel.datasets.render import render_discs
from worldmodel.evaluation.tracking import track_episode

BASELINES = ("copy_last", "constant_velocity")


def copy_last(frames: np.ndarray, context_frames: int) -> np.ndarray:
    """The context frames, then the last context frame repeated: uint8 ``(T, H, W, 3)``."""
    frames = np.asarray(frames)
    held = np.repeat(frames[context_frames - 1 : context_frames], len(frames) - context_frames, axis=0)
    return np.concatenate([frames[:context_frames], held])


def constant_velocity(frames: np.ndarray, context_frames: int, annotation: dict[str, Any]) -> np.ndarray:
    """The context frames, then every object moved on at its last tracked velocity: uint8 ``(T, H, W, 3)``.

    Objects never seen in the context are not drawn; an object seen in one frame only stays still.
    """
    frames = np.asarray(frames)
    if context_frames < 2:
        raise ValueError(f"constant-velocity extrapolation needs at least 2 context frames, got {context_frames}")
    tracks = track_episode(frames[:context_frames], annotation)
    objects = annotation["objects"]
    steps = np.arange(1, len(frames) - context_frames + 1, dtype=np.float64)[:, None]  # (T - c, 1)
    centers, keep = [], []
    for k in range(len(objects)):
        seen = np.flatnonzero(tracks.present[:, k])
        if seen.size == 0:
            continue
        last = tracks.centers[seen[-1], k]  # (2,)
        velocity = (last - tracks.centers[seen[-2], k]) / (seen[-1] - seen[-2]) if seen.size > 1 else np.zeros(2)
        centers.append(last + (steps + context_frames - 1 - seen[-1]) * velocity)  # (T - c, 2)
        keep.append(k)
    height, width = frames.shape[1:3]
    if not keep:
        return copy_last(frames, context_frames)
    radii = np.array([objects[k]["radius"] for k in keep], dtype=np.float64)
    colors = np.array([objects[k]["rgb"] for k in keep], dtype=np.float64)
    future = render_discs(np.stack(centers, axis=1), radii, colors, height, width)  # (T - c, H, W, 3)
    return np.concatenate([frames[:context_frames], future])


def baseline_rollout(kind: str, frames: np.ndarray, context_frames: int, annotation: dict[str, Any]) -> np.ndarray:
    """Roll out baseline ``kind`` (``copy_last`` or ``constant_velocity``) from the first ``context_frames``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if not 1 <= context_frames < len(frames):
        raise ValueError(f"context_frames must be in [1, {len(frames) - 1}], got {context_frames}")
    if kind == "copy_last":
        return copy_last(frames, context_frames)
    if kind == "constant_velocity":
        return constant_velocity(frames, context_frames, annotation)
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; got {kind!r}")
