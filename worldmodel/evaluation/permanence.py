"""Object permanence: in every checked frame, the balls seen (by colour) are exactly the true balls.

A frame passes when, for every colour of the palette, the number of balls of that colour found in the frame
equals the number the scene holds: one blob per true ball, no blob of a colour the scene does not hold. A
ball that splits in two, vanishes, changes colour or merges with another fails the frame. Balls are found
with the tracker's two-colour mixing model (:func:`~worldmodel.evaluation.tracking.coverage_maps`) run over the
whole palette, so anti-aliased edges are read as partial coverage of one colour and never as a second colour;
a blob is a ball when its 8-connected pixels of coverage >= 0.5 cover at least a quarter of the smallest true
ball's area (and at least 4 pixels): a ball decoded as two ball-sized pieces fails, while the few-pixel colour
fringes a lossy decoder leaves beside a ball (a 4-6 px "blue" rim on a purple ball) are not balls.

Checked frames: those where the true balls are all fully inside the picture and apart from each other (where
balls touch or leave the frame, what should be seen is ambiguous); for rollouts, only the predicted frames.
A video passes when every checked frame passes. Calibration (tests): simulator renders pass every frame; a
frame with one ball recoloured, removed, split or two balls merged fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from worldmodel.datasets.palette import BACKGROUND, COLOR_NAMES, PALETTE
from worldmodel.evaluation.tracking import coverage_maps

MIN_AREA = 4.0  # pixels of coverage >= 0.5: smaller blobs are noise, not balls
AREA_FRACTION = 0.25  # of the smallest true ball's area: smaller blobs are fringes or fragments, not balls
INSIDE_MARGIN = 1.0  # px between a checked ball's edge and the frame border
APART_MARGIN = 2.0  # px between two checked balls' edges


@dataclass
class PermanenceResult:
    """Per-frame outcome of the permanence check of one video."""

    checked: np.ndarray  # (T,) bool: frame is checked
    passed: np.ndarray  # (T,) bool: frame passes (meaningful where checked)
    counts: np.ndarray  # (T, C) int: balls found per palette colour

    @property
    def frames_checked(self) -> int:
        """Number of checked frames."""
        return int(self.checked.sum())

    @property
    def frames_passed(self) -> int:
        """Number of checked frames that pass."""
        return int((self.checked & self.passed).sum())

    @property
    def video_passed(self) -> bool | None:
        """Every checked frame passes (``None`` when no frame is checked)."""
        return bool(self.passed[self.checked].all()) if self.checked.any() else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary: frames checked / passed, video pass, first failing frame."""
        failing = np.flatnonzero(self.checked & ~self.passed)
        return {"frames_checked": self.frames_checked, "frames_passed": self.frames_passed,
                "video_passed": self.video_passed, "first_failing_frame": int(failing[0]) if failing.size else None}


def count_balls(frames: np.ndarray, min_area: float = MIN_AREA) -> np.ndarray:
    """Balls found per palette colour in each frame: int ``(T, C)`` in the order of ``COLOR_NAMES``."""
    colors = np.array([PALETTE[name] for name in COLOR_NAMES], dtype=np.float32)
    cover = coverage_maps(np.asarray(frames), colors, BACKGROUND)  # (T, C, H, W)
    structure = np.ones((3, 3), bool)
    counts = np.zeros(cover.shape[:2], dtype=np.int64)
    for t, c in np.ndindex(*cover.shape[:2]):
        mask = cover[t, c] >= 0.5
        if mask.sum() < min_area:
            continue
        labels, n = ndimage.label(mask, structure=structure)
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
        counts[t, c] = int((sizes >= min_area).sum())
    return counts


def expected_counts(color_names: list[str]) -> np.ndarray:
    """Balls per palette colour ``(C,)`` of a scene holding balls of ``color_names``."""
    unknown = sorted(set(color_names) - set(COLOR_NAMES))
    if unknown:
        raise ValueError(f"unknown ball colours {unknown}; expected names from {list(COLOR_NAMES)}")
    return np.array([color_names.count(name) for name in COLOR_NAMES], dtype=np.int64)


def checkable_frames(annotation: dict[str, Any], num_frames: int, height: int, width: int) -> np.ndarray:
    """``(T,)`` bool: frames where every true ball is fully inside the picture and apart from the others."""
    states = np.asarray(annotation["states"], dtype=np.float64)[:num_frames, :, :2]  # (T, N, 2) px
    radius = np.array([o["radius"] for o in annotation["objects"]], dtype=np.float64)  # (N,) px
    ok = np.ones(num_frames, dtype=bool)
    n_states = len(states)
    ok[n_states:] = False  # no ground truth beyond the episode
    if radius.size == 0:
        return ok
    reach = radius + INSIDE_MARGIN
    x, y = states[..., 0], states[..., 1]
    inside = (x - reach >= -0.5) & (x + reach <= width - 0.5) & (y - reach >= -0.5) & (y + reach <= height - 0.5)
    ok[:n_states] &= inside.all(axis=1)
    for i in range(len(radius)):
        for j in range(i + 1, len(radius)):
            gap = np.linalg.norm(states[:, i] - states[:, j], axis=-1) - radius[i] - radius[j]
            ok[:n_states] &= gap >= APART_MARGIN
    return ok


def ball_area_threshold(annotation: dict[str, Any]) -> float:
    """Smallest blob (pixels) that counts as a ball in a scene: a quarter of its smallest ball's area, >= 4 px."""
    radii = [float(o["radius"]) for o in annotation["objects"]]
    return max(MIN_AREA, AREA_FRACTION * np.pi * min(radii) ** 2) if radii else MIN_AREA


def permanence(frames: np.ndarray, annotation: dict[str, Any], start_frame: int = 0,
               min_area: float | None = None) -> PermanenceResult:
    """Check uint8 ``(T, H, W, 3)`` ``frames`` against the balls of ``annotation`` (see the module docstring).

    Args:
        frames: the video to check; frame ``t`` is compared with the episode's state at ``t``.
        annotation: the episode (``objects`` with ``color`` names and ``radius`` in px, per-frame ``states``).
        start_frame: frames before it are not checked (a rollout's context frames).
        min_area: smallest blob, in pixels, that counts as a ball (default :func:`ball_area_threshold`).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if not isinstance(start_frame, int | np.integer) or start_frame < 0:
        raise ValueError(f"start_frame must be a non-negative integer, got {start_frame!r}")
    t, h, w = frames.shape[:3]
    checked = checkable_frames(annotation, t, h, w)
    checked[:start_frame] = False
    counts = count_balls(frames, ball_area_threshold(annotation) if min_area is None else min_area)  # (T, C)
    want = expected_counts([o["color"] for o in annotation["objects"]])  # (C,)
    passed = (counts == want[None]).all(axis=1)
    return PermanenceResult(checked, passed, counts)


def summarize(results: list[PermanenceResult | None]) -> dict[str, Any]:
    """Share of checked frames that pass and of videos that pass; ``None`` (an unreadable video) fails."""
    frames_checked = sum(r.frames_checked for r in results if r is not None)
    frames_passed = sum(r.frames_passed for r in results if r is not None)
    verdicts = [False if r is None else r.video_passed for r in results]
    judged = [v for v in verdicts if v is not None]
    return {
        "frame_permanence": frames_passed / frames_checked if frames_checked else None,
        "video_permanence": sum(judged) / len(judged) if judged else None,
        "frames_checked": frames_checked,
        "videos_checked": len(judged),
    }
