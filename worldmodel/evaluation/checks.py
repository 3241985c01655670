"""Physics checks that need no ground-truth trajectory (text-to-video): the video must obey the world's laws.

From tracked objects only:

- ``gravity``: acceleration fitted as the median second difference of each fully visible object
  (px/s^2 and units/s^2), compared with the scene's gravity when it is given;
- ``restitution``: at each detected single-object event (a bounce) the ratio of the speed along the
  impulse direction after / before; must lie in [0, 1] (tolerance 0.1);
- ``momentum``: at each detected event where two objects touch (both fully visible, so no wall
  takes part), the relative change of total momentum
  (masses from ``masses`` or proportional to r^2; gravity's impulse removed when gravity is given);
  must stay under 0.25;
- ``interpenetration``: the largest overlap ``(r_i + r_j - d) / min(r_i, r_j)`` of two visible
  objects; must stay under 0.2;
- ``object_count``: objects present in at least half the frames; must equal ``expected_count`` when given.
"""

from __future__ import annotations

import math
import numbers
import warnings
from itertools import combinations
from typing import Any

import numpy as np

from worldmodel.evaluation.physics import detect_events
from worldmodel.evaluation.tracking import Tracks

RESTITUTION_TOLERANCE = 0.1
MOMENTUM_TOLERANCE = 0.25
OVERLAP_TOLERANCE = 0.2
GRAVITY_TOLERANCE = 0.25  # relative error of the fitted gravity


def fitted_gravity(tracks: Tracks, fps: float) -> np.ndarray | None:
    """Median second difference of fully visible centres, in px/s^2 ``(gx, gy)`` (None when unmeasurable)."""
    c, v = tracks.centers, tracks.visible
    acc = (c[2:] - 2 * c[1:-1] + c[:-2]) * fps**2  # (T - 2, N, 2)
    ok = v[2:] & v[1:-1] & v[:-2]
    return np.median(acc[ok], axis=0) if ok.any() else None


def _velocity(c: np.ndarray, t0: int, t1: int, k: int, fps: float) -> np.ndarray:
    """Velocity of object ``k`` between frames ``t0`` and ``t1`` in px/s."""
    return (c[t1, k] - c[t0, k]) * fps / (t1 - t0)


def physics_checks(tracks: Tracks, fps: float, ppu: float, gravity: list[float] | None = None,
                   expected_count: int | None = None, masses: list[float] | None = None) -> dict[str, Any]:
    """Run the ground-truth-free checks on ``tracks`` (see the module docstring).

    Args:
        tracks: tracked objects of one video.
        fps: frames per second; ppu: pixels per world unit.
        gravity: the scene's gravity in px/s^2 (optional).
        expected_count: number of objects the caption names (optional).
        masses: object masses (optional; default proportional to r^2).

    Returns:
        ``{"figures": {...}, "passed": {check: bool}, "score": fraction passed}``.
    """
    for name, value in (("fps", fps), ("ppu", ppu)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    c, n, t_len = tracks.centers, tracks.centers.shape[1], tracks.num_frames
    radius = None
    if tracks.present.any():
        with warnings.catch_warnings():  # objects never present have no radius (NaN)
            warnings.simplefilter("ignore", RuntimeWarning)
            radius = np.nanmedian(np.where(tracks.present, tracks.radii, np.nan), axis=0)  # (N,)
    figures: dict[str, Any] = {}
    passed: dict[str, bool] = {}

    g_fit = fitted_gravity(tracks, fps)
    figures["gravity_fit"] = None if g_fit is None else (g_fit / ppu).tolist()  # units/s^2
    if g_fit is not None and gravity is not None:
        g = np.asarray(gravity, dtype=np.float64)
        figures["gravity_error"] = float(np.linalg.norm(g_fit - g) / max(np.linalg.norm(g), ppu))
        passed["gravity"] = figures["gravity_error"] <= GRAVITY_TOLERANCE

    g_scene = np.asarray(gravity if gravity is not None else [0.0, 0.0], dtype=np.float64)
    events = detect_events(c, tracks.visible, g_scene, fps) if t_len >= 4 else []
    ratios, momentum, pairs_seen = [], [], set()
    for frame, k in events:
        if radius is None or frame < 2 or frame + 2 >= t_len:
            continue
        step = np.linalg.norm(c[frame + 1] - c[frame - 1], axis=-1) / 2  # (N,) px moved per frame
        gaps = np.linalg.norm(c[frame - 1 : frame + 2] - c[frame - 1 : frame + 2, k : k + 1], axis=-1)  # (3, N)
        reach = radius + radius[k] + 2.0 + np.nan_to_num(step + step[k])  # contact within a frame's motion
        near = np.nanmin(np.where(np.isnan(gaps), np.inf, gaps), axis=0) <= reach  # (N,)
        near[k] = False
        partner = {j: f for f, j in events if near[j] and abs(f - frame) <= 1}  # objects hit in the same event
        involved = {k: frame, **partner}
        lo, hi = min(involved.values()) - 1, max(involved.values()) + 1  # velocities (lo-1, lo) and (hi, hi+1)
        if lo < 1 or hi + 1 >= t_len or any(
                i in involved and lo - 1 <= f <= hi + 1 and f != involved[i] for f, i in events):
            continue  # another event of these objects too close: no clean before/after velocity
        v0 = {i: _velocity(c, lo - 1, lo, i, fps) for i in involved}
        v1 = {i: _velocity(c, hi, hi + 1, i, fps) for i in involved}
        if len(partner) == 1:
            (j,) = partner
            if (min(k, j), max(k, j), lo) in pairs_seen or not tracks.visible[lo - 1 : hi + 2, [k, j]].all():
                continue  # counted already, or a wall may take part (momentum is not kept)
            pairs_seen.add((min(k, j), max(k, j), lo))
            m = np.asarray(masses, dtype=np.float64) if masses is not None else radius**2
            kick = (m[k] + m[j]) * g_scene * (hi - lo + 1) / fps  # gravity's impulse between the two velocities
            change = m[k] * (v1[k] - v0[k]) + m[j] * (v1[j] - v0[j]) - kick
            scale = m[k] * np.linalg.norm(v0[k]) + m[j] * np.linalg.norm(v0[j])
            if np.isfinite(change).all() and scale > 0:
                momentum.append(float(np.linalg.norm(change) / scale))
        elif not near.any():  # nothing else near: a bounce off a wall
            normal = v1[k] - v0[k]
            if np.isfinite(normal).all() and np.linalg.norm(normal) > 0:
                normal = normal / np.linalg.norm(normal)
                before = abs(float(v0[k] @ normal))
                if before > 0:
                    ratios.append(abs(float(v1[k] @ normal)) / before)
    figures["restitution"] = ratios
    if ratios:
        passed["restitution"] = all(0.0 <= r <= 1.0 + RESTITUTION_TOLERANCE for r in ratios)
    figures["momentum_change"] = momentum
    if momentum:
        passed["momentum"] = max(momentum) <= MOMENTUM_TOLERANCE

    overlap = 0.0
    if radius is not None:
        for i, j in combinations(range(n), 2):
            both = tracks.visible[:, i] & tracks.visible[:, j]
            if both.any():
                d = np.linalg.norm(c[both, i] - c[both, j], axis=-1)
                overlap = max(overlap, float(((radius[i] + radius[j] - d) / min(radius[i], radius[j])).max()))
    figures["interpenetration"] = overlap
    passed["interpenetration"] = overlap <= OVERLAP_TOLERANCE

    figures["object_count"] = int((tracks.present.mean(axis=0) >= 0.5).sum())
    if expected_count is not None:
        passed["object_count"] = figures["object_count"] == expected_count
    return {"figures": figures, "passed": passed, "score": float(np.mean(list(passed.values())))}
