"""Object permanence on crafted frames: simulator renders pass; split, merge, recolour and vanish fail."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from worldmodel.datasets.palette import PALETTE
from worldmodel.datasets.render import render_discs
from worldmodel.datasets.scenarios import SCENARIOS
from worldmodel.datasets.simulator import simulate
from worldmodel.evaluation.permanence import checkable_frames, count_balls, permanence, summarize


def _scene(colors: list[str], centers: list[tuple[float, float]], radius: float = 5.0) -> tuple[np.ndarray, dict]:
    """One 64x64 frame of still balls and a matching annotation."""
    xy = np.array(centers, dtype=np.float64)[None]  # (1, N, 2)
    radii = np.full(len(colors), radius)
    frame = render_discs(xy, radii, np.array([PALETTE[c] for c in colors]), 64, 64)
    annotation = {"objects": [{"color": c, "radius": radius} for c in colors],
                  "states": np.concatenate([xy, np.zeros_like(xy)], axis=-1).tolist()}
    return frame, annotation


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_simulator_renders_pass(scenario: str) -> None:
    results = [permanence(ep.frames, ep.annotation) for ep in (simulate(scenario, "test_id", s) for s in range(4))]
    summary = summarize(results)
    assert summary["frames_checked"] > 0
    assert summary["frame_permanence"] == 1.0


def test_one_ball_recoloured_removed_split_or_merged_fails() -> None:
    frame, annotation = _scene(["red", "cyan"], [(16, 20), (44, 40)])
    assert permanence(frame, annotation).video_passed is True
    recoloured, _ = _scene(["orange", "cyan"], [(16, 20), (44, 40)])
    removed, _ = _scene(["cyan"], [(44, 40)])
    split, _ = _scene(["red", "red", "cyan"], [(12, 20), (26, 20), (44, 40)], radius=3.0)
    merged, _ = _scene(["yellow"], [(30, 30)])
    extra, _ = _scene(["red", "cyan", "white"], [(16, 20), (44, 40), (16, 50)])
    for bad in (recoloured, removed, split, merged, extra):
        result = permanence(bad, annotation)
        assert result.video_passed is False
        assert result.frames_passed == 0


def test_darkened_ball_still_counts_and_noise_does_not() -> None:
    frame, annotation = _scene(["white"], [(30, 30)])
    dark = (frame.astype(np.float32) * 0.8).astype(np.uint8)  # a white ball decoded at ~200
    rng = np.random.default_rng(0)
    noisy = np.clip(frame.astype(np.int16) + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
    assert permanence(dark, annotation).video_passed is True
    assert permanence(noisy, annotation).video_passed is True


def test_frames_where_balls_touch_or_leave_are_not_checked() -> None:
    _, annotation = _scene(["red", "cyan"], [(16, 20), (44, 40)])
    touching = copy.deepcopy(annotation)
    touching["states"][0][1][:2] = [25.0, 20.0]  # edges 1 px apart
    leaving = copy.deepcopy(annotation)
    leaving["states"][0][0][:2] = [2.0, 20.0]
    assert checkable_frames(annotation, 1, 64, 64).tolist() == [True]
    assert checkable_frames(touching, 1, 64, 64).tolist() == [False]
    assert checkable_frames(leaving, 1, 64, 64).tolist() == [False]


def test_rollout_context_frames_are_not_checked_and_unreadable_videos_fail() -> None:
    episode = simulate("uniform", "test_id", 0)
    result = permanence(episode.frames, episode.annotation, start_frame=5)
    assert not result.checked[:5].any()
    summary = summarize([result, None])
    assert summary["video_permanence"] == 0.5
    with pytest.raises(ValueError, match="uint8"):
        permanence(episode.frames.astype(np.float32), episode.annotation)
    assert count_balls(episode.frames[:1]).sum() == 1


def test_small_colour_fringes_are_not_balls_but_ball_sized_pieces_are() -> None:
    frame, annotation = _scene(["purple"], [(30, 30)], radius=7.0)  # area ~154 px: balls from ~38 px
    fringe = frame.copy()
    fringe[0, 30:32, 37:39] = PALETTE["blue"]  # a 4 px rim of another colour
    piece = frame.copy()
    yy, xx = np.mgrid[0:64, 0:64]
    piece[0][(yy - 50) ** 2 + (xx - 12) ** 2 <= 16] = PALETTE["blue"]  # a 49 px blue blob: a second ball
    assert permanence(fringe, annotation).video_passed is True
    assert permanence(piece, annotation).video_passed is False
