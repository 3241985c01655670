"""Text adherence of a generated video: are the colours, counts and motion named in the prompt in the video?

The prompt is read with the vocabulary of the dataset's captions (:mod:`worldmodel.datasets.captions`):
palette colour names, number words before "ball(s)", compass directions ("up and to the left"),
and motion words ("falls", "parabola", "bounces", "collide", "stays still"). Objects are found with
the colour tracker over the whole palette. Each check is pass/fail; ``score`` is the fraction passed.
"""

from __future__ import annotations

import math
import re
import sys
import types
from typing import Any

import numpy as np

from worldmodel.datasets.palette import PALETTE
from worldmodel.evaluation.physics import detect_events
from worldmodel.evaluation.tracking import track_objects

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "a": 1, "an": 1}
# compass words -> angle in image coordinates (y down), longest phrases first
DIRECTIONS = {
    "upwards and to the right": 315, "upwards and to the left": 225,
    "down and to the right": 45, "down and to the left": 135, "up and to the left": 225,
    "up and to the right": 315, "to the right": 0, "to the left": 180, "downwards": 90, "upwards": 270,
    "thrown right": 0, "thrown left": 180,
}
FALL_WORDS = ("falls", "falling", "parabola", "parabolic", "gravity", "dropped")
EVENT_WORDS = ("bounce", "collide", "collision", "hits")
MIN_PRESENCE = 0.5  # an object is in the video when it is a ball (disc-like) in at least half the frames
MIN_DISC_FILL = 0.9  # share of a blob's pixels within radius + 1 px of its centre for it to count as a ball
MIN_AREA = 3.0  # pixels


def disc_like(tracks: Any) -> np.ndarray:
    """``(T, N)`` bool: the object's blob is present and shaped like a ball (not scattered pixels of its colour)."""
    t, n, h, w = tracks.masks.shape
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros((t, n), dtype=bool)
    for i, k in zip(*np.nonzero(tracks.present), strict=True):
        mask = tracks.masks[i, k]
        if mask.sum() < MIN_AREA:
            continue
        cx, cy = tracks.centers[i, k]
        dist = np.hypot(xs[mask] - cx, ys[mask] - cy)
        out[i, k] = float(np.mean(dist <= tracks.radii[i, k] + 1.0)) >= MIN_DISC_FILL
    return out


def _direction_of(text: str) -> tuple[str, float] | None:
    """The first compass phrase in ``text`` and its angle in degrees."""
    hits = [(text.find(p), p) for p in DIRECTIONS if p in text]
    if not hits:
        return None
    _, phrase = min(hits, key=lambda h: (h[0], -len(h[1])))
    return phrase, float(DIRECTIONS[phrase])


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def text_adherence(video: np.ndarray, prompt: str, fps: float = 10.0) -> dict[str, Any]:
    """Check a uint8 ``(T, H, W, 3)`` video against its prompt; returns ``{"score", "checks", "found"}``.

    ``checks`` maps each check (``color:red``, ``count``, ``direction:red``, ``falls``, ``events``,
    ``still:red``) to True/False; ``score`` is the fraction passed (None when the prompt names nothing
    checkable).
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.dtype != np.uint8 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    text = prompt.lower()
    names = list(PALETTE)
    tracks = track_objects(video, np.array([PALETTE[c] for c in names], dtype=np.float32))
    balls = disc_like(tracks)  # (T, colours)
    in_video = balls.mean(axis=0) >= MIN_PRESENCE  # (colours,)
    found = [c for c, here in zip(names, in_video, strict=True) if here]
    named = sorted((m.start(), c) for c in names for m in re.finditer(rf"\b{c}\b", text))
    colours = list(dict.fromkeys(c for _, c in named))
    checks: dict[str, bool] = {f"color:{c}": c in found for c in colours}

    count_match = re.search(r"\b(one|two|three|four|five)\b[^.;]*?\bballs?\b", text)
    expected = NUMBERS[count_match.group(1)] if count_match else (len(colours) or None)
    if expected is not None:
        checks["count"] = len(found) == expected

    for i, (start, colour) in enumerate(named):
        k = names.index(colour)
        stop = named[i + 1][0] if i + 1 < len(named) else len(text)
        segment = text[start:stop]
        seen = np.flatnonzero(balls[:, k])
        if seen.size < 2:
            continue
        first, second = tracks.centers[seen[0], k], tracks.centers[seen[1], k]  # initial direction
        dx, dy = second - first
        direction = _direction_of(segment)
        if direction is not None and math.hypot(dx, dy) > 0.5:
            phrase, angle = direction
            if phrase in ("to the right", "to the left", "thrown right", "thrown left"):
                checks[f"direction:{colour}"] = bool((dx > 0) == (angle == 0.0))
            else:
                checks[f"direction:{colour}"] = bool(_angle_gap(math.degrees(math.atan2(dy, dx)) % 360, angle) <= 45)
        if "stays still" in segment:
            checks[f"still:{colour}"] = float(np.linalg.norm(tracks.centers[seen[-1], k] - first)) < 1.0
    if any(w in text for w in FALL_WORDS) and "without gravity" not in text and found:
        c = tracks.centers
        ok = tracks.visible[2:] & tracks.visible[1:-1] & tracks.visible[:-2]
        ay = (c[2:, :, 1] - 2 * c[1:-1, :, 1] + c[:-2, :, 1])[ok]
        checks["falls"] = bool(ay.size) and float(np.median(ay)) > 0
    if any(w in text for w in EVENT_WORDS) and found:
        checks["events"] = bool(detect_events(tracks.centers, balls, np.zeros(2), fps))
    score = float(np.mean(list(checks.values()))) if checks else None
    return {"score": score, "checks": checks, "found": found}


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`text_adherence`.

    ``from worldmodel.evaluation import text_adherence`` finds this module whenever it has been imported
    (Python binds a package's sub-module to the package attribute of the same name), so the module
    forwards calls to the function of its name.
    """

    def __call__(self, video: np.ndarray, prompt: str, fps: float = 10.0) -> dict[str, Any]:
        return text_adherence(video, prompt, fps)


sys.modules[__name__].__class__ = _CallableModule
