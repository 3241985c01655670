"""Physics consistency of a predicted video against the simulator's episode with the same initial state.

The predicted video and the reference render are tracked with :mod:`worldmodel.evaluation.tracking`;
the reference trajectory is the simulator's own state (``annotation["states"]``). Only the predicted
frames count: ``t >= context_frames`` (the frames the model was given are not scored).

Figures (per episode; ``N`` objects, ``W`` = frame width in pixels, ``ppu`` pixels per world unit):

- ``coverage``: fraction of object-frames present in the reference where the object is found in the
  prediction.
- ``identity``: fraction of those where the object of that colour is found and its nearest reference
  object is itself (colour/identity persistence: a colour swap scores 0).
- ``ade`` / ``fde``: mean / final-frame centre error divided by ``W``.
- ``velocity_error``: PhyWorld's velocity error in world units/s: velocities are frame differences
  times fps over ``ppu`` (the reference's from the simulator's positions the same way), mean absolute
  (vector) error over frames where the object is fully visible in both videos at ``t - 1`` and ``t``;
  also split into ``velocity_error_before`` / ``_after`` the object's first collision or bounce.
- ``shape_error``: mean ``|r_pred - r| / r`` over fully visible frames.
- ``timing_error``: frames between each reference collision/bounce (detected from the simulator's
  positions) and the nearest event detected in the prediction; a missed event counts the whole window.
- ``iou``: spatiotemporal IoU of the object masks (coverage >= 0.5), summed over frames and objects.

Aggregate ``score`` in [0, 1]: the mean of the sub-scores that apply to the episode,

    coverage, identity, exp(-ade / 0.05), exp(-velocity_error / (1 unit/s)), exp(-shape_error / 0.1),
    iou, exp(-timing_error / (2 frames))

(velocity and shape only when the reference shows an object fully visible in the window, timing
only when the window holds a reference event; a sub-score the reference allows but the prediction
cannot be measured for, because it lacks the objects, counts 0). The simulator's own render scores about 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from worldmodel.evaluation.tracking import Tracks, track_episode

ADE_SCALE = 0.05  # fraction of the frame width
VELOCITY_SCALE = 1.0  # world units/s
SHAPE_SCALE = 0.1  # relative radius change
TIMING_SCALE = 2.0  # frames
EVENT_THRESHOLD = 0.4  # px/frame^2 of unexplained acceleration that marks a collision or bounce


def reference_positions(annotation: dict[str, Any]) -> np.ndarray:
    """Simulator centres ``(T, N, 2)`` in pixels."""
    return np.asarray(annotation["states"], dtype=np.float64)[..., :2]


def detect_events(centers: np.ndarray, valid: np.ndarray, gravity: np.ndarray, fps: float,
                  threshold: float = EVENT_THRESHOLD) -> list[tuple[int, int]]:
    """Collisions/bounces as ``(frame, object)``: local maxima of the acceleration gravity does not explain.

    ``centers`` ``(T, N, 2)`` px, ``valid`` ``(T, N)``, ``gravity`` px/s^2. The acceleration at ``t`` uses
    frames ``t - 1, t, t + 1`` (px/frame^2); an event lies between ``t - 1`` and ``t + 1``.
    """
    t_len, n = centers.shape[:2]
    if t_len < 3:
        return []
    acc = centers[2:] - 2 * centers[1:-1] + centers[:-2] - np.asarray(gravity) / fps**2  # (T - 2, N, 2)
    mag = np.linalg.norm(acc, axis=-1)
    mag = np.where(valid[2:] & valid[1:-1] & valid[:-2], mag, 0.0)  # (T - 2, N)
    events = []
    for k in range(n):
        m = mag[:, k]
        for i in range(len(m)):
            left, right = m[i - 1] if i > 0 else 0.0, m[i + 1] if i + 1 < len(m) else 0.0
            if m[i] > threshold and m[i] >= left and m[i] > right:
                events.append((i + 1, k))
    return events


def _velocities(centers: np.ndarray, fps: float, ppu: float) -> np.ndarray:
    """Frame-difference velocities ``(T, N, 2)`` in world units/s (row 0 is NaN)."""
    v = np.full_like(centers, np.nan)
    v[1:] = (centers[1:] - centers[:-1]) * fps / ppu
    return v


def _mean(values: np.ndarray) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _jsonable(values: np.ndarray) -> list:
    """Nested lists rounded to 1e-3 with NaN as None (valid JSON)."""
    values = np.round(np.asarray(values, dtype=np.float64), 3)
    return np.where(np.isnan(values), None, values).tolist()


def _first_event_frames(annotation: dict[str, Any], n: int, length: int) -> np.ndarray:
    """Frame of each object's first collision or bounce (``length`` when it has none)."""
    first = np.full(n, length)
    for event in annotation.get("events", []):
        for k in event["objects"]:
            if 0 <= k < n:
                first[k] = min(first[k], event["frame"])
    return first


def episode_metrics(pred: np.ndarray, annotation: dict[str, Any], reference: np.ndarray, context_frames: int,
                    ref_tracks: Tracks | None = None) -> dict[str, Any]:
    """Physics figures and ``score`` of predicted frames against one reference episode (see module docstring).

    Args:
        pred: uint8 ``(T', H, W, 3)`` predicted video (context frames included), at least the reference's
            ``T`` frames (a shorter one is refused, never scored on fewer frames); only the first ``T`` count.
        annotation: the episode annotation (simulator states, objects, events, fps, ppu, gravity).
        reference: uint8 ``(T, H, W, 3)`` the simulator's render of the episode.
        context_frames: frames given to the model; scoring starts after them.
        ref_tracks: tracks of ``reference`` when already computed.
    """
    pred, reference = np.asarray(pred), np.asarray(reference)
    if pred.ndim != 4 or pred.shape[1:] != reference.shape[1:]:
        raise ValueError(f"predicted video must be uint8 (T, {reference.shape[1]}, {reference.shape[2]}, 3) like "
                         f"the reference, got {pred.dtype} {pred.shape}")
    if len(pred) < len(reference):
        raise ValueError(f"the predicted video has {len(pred)} frames, fewer than the reference's {len(reference)}: "
                         "a prediction must cover every frame it is scored on")
    length = len(reference)
    if not 1 <= context_frames < length:
        raise ValueError(f"context_frames must be in [1, {length - 1}] for {length} comparable frames, "
                         f"got {context_frames}")
    pred, reference = pred[:length], reference[:length]
    fps, ppu, width = float(annotation["fps"]), float(annotation["pixels_per_unit"]), reference.shape[2]
    gravity = np.asarray(annotation.get("gravity", [0.0, 0.0]), dtype=np.float64)
    gt_pos = reference_positions(annotation)[:length]  # (T, N, 2)
    n = gt_pos.shape[1]
    radius = np.array([o["radius"] for o in annotation["objects"]], dtype=np.float64)  # (N,)
    ref = ref_tracks or track_episode(reference, annotation)
    ref = Tracks(*(a[:length] for a in (ref.centers, ref.radii, ref.areas, ref.present, ref.visible, ref.masks)))
    trk = track_episode(pred, annotation)
    window = np.zeros((length, n), bool)
    window[context_frames:] = True

    gt_here = window & ref.present  # (T, N)
    found = gt_here & trk.present
    coverage = float(found.sum() / max(gt_here.sum(), 1))
    dist = np.linalg.norm(trk.centers[:, :, None] - gt_pos[:, None], axis=-1)  # (T, N pred, N ref)
    nearest = np.argmin(np.where(np.isnan(dist), np.inf, dist), axis=-1)  # (T, N)
    identity = float((found & (nearest == np.arange(n))).sum() / max(gt_here.sum(), 1))

    err = np.linalg.norm(trk.centers - gt_pos, axis=-1) / width  # (T, N)
    ade = _mean(err[found])
    fde = _mean(err[-1][found[-1]])

    vel_possible = window.copy()  # measurable in the reference: visible at t - 1 and t
    vel_possible[1:] &= ref.visible[1:] & ref.visible[:-1]
    vel_possible[0] = False
    vel_ok = vel_possible.copy()
    vel_ok[1:] &= trk.visible[1:] & trk.visible[:-1]
    vel_err = np.linalg.norm(_velocities(trk.centers, fps, ppu) - _velocities(gt_pos, fps, ppu), axis=-1)  # (T, N)
    after = np.arange(length)[:, None] >= _first_event_frames(annotation, n, length)[None]  # (T, N)
    both_visible = window & trk.visible & ref.visible
    shape_err = np.abs(trk.radii - radius) / radius  # (T, N)
    inter = (trk.masks & ref.masks)[context_frames:].sum()
    union = (trk.masks | ref.masks)[context_frames:].sum()

    gt_events = [e for e in detect_events(gt_pos, np.ones((length, n), bool), gravity, fps) if e[0] >= context_frames]
    pred_events = detect_events(trk.centers, trk.present, gravity, fps)
    timing = []
    for frame, k in gt_events:
        candidates = [abs(f - frame) for f, j in pred_events if j == k and f >= context_frames]
        timing.append(min(candidates) if candidates else length - context_frames)

    figures: dict[str, Any] = {
        "frames": length,
        "objects": n,
        "coverage": coverage,
        "identity": identity,
        "ade": ade,
        "fde": fde,
        "velocity_error": _mean(vel_err[vel_ok]),
        "velocity_error_before": _mean(vel_err[vel_ok & ~after]),
        "velocity_error_after": _mean(vel_err[vel_ok & after]),
        "shape_error": _mean(shape_err[both_visible]),
        "timing_error": _mean(np.array(timing)) if timing else None,
        "timing_error_s": _mean(np.array(timing)) / fps if timing else None,
        "events": len(gt_events),
        "iou": float(inter / union) if union else None,
        "measurable": {"velocity": bool(vel_possible.any()), "shape": bool((window & ref.visible).any())},
        "trajectory": {"predicted": _jsonable(trk.centers), "reference": _jsonable(gt_pos)},
        "error_over_time": [_mean(err[t][found[t]]) for t in range(length)],
    }
    figures["subscores"] = subscores(figures)
    figures["score"] = float(np.mean(list(figures["subscores"].values())))
    return figures


def subscores(figures: dict[str, Any]) -> dict[str, float]:
    """The [0, 1] sub-scores behind ``score`` (see the module docstring)."""

    def decay(value: float | None, scale: float) -> float:
        return math.exp(-value / scale) if value is not None else 0.0

    out = {
        "coverage": figures["coverage"],
        "identity": figures["identity"],
        "position": decay(figures["ade"], ADE_SCALE),
        "iou": figures["iou"] if figures["iou"] is not None else 0.0,
    }
    if figures["measurable"]["velocity"]:
        out["velocity"] = decay(figures["velocity_error"], VELOCITY_SCALE)
    if figures["measurable"]["shape"]:
        out["shape"] = decay(figures["shape_error"], SHAPE_SCALE)
    if figures["events"]:
        out["timing"] = decay(figures["timing_error"], TIMING_SCALE)
    return out


def tracker_floor(reference: np.ndarray, annotation: dict[str, Any], ref_tracks: Tracks | None = None
                  ) -> dict[str, float | None]:
    """The tracker's own error on the simulator's render: centre px, velocity units/s, radius px."""
    tracks = ref_tracks or track_episode(reference, annotation)
    gt_pos = reference_positions(annotation)[: tracks.num_frames]
    fps, ppu = float(annotation["fps"]), float(annotation["pixels_per_unit"])
    vis = tracks.visible
    radius = np.array([o["radius"] for o in annotation["objects"]], dtype=np.float64)
    vel_ok = np.zeros_like(vis)
    vel_ok[1:] = vis[1:] & vis[:-1]
    vel_err = np.linalg.norm(_velocities(tracks.centers, fps, ppu) - _velocities(gt_pos, fps, ppu), axis=-1)
    return {
        "center_px": _mean(np.linalg.norm(tracks.centers - gt_pos, axis=-1)[vis]),
        "velocity": _mean(vel_err[vel_ok]),
        "radius_px": _mean(np.abs(tracks.radii - radius)[vis]),
    }
