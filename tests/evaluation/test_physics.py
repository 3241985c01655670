"""Calibration of the physics score: the simulator's render scores ~1; broken videos and baselines score lower."""

import numpy as np
import pytest

from worldmodel.datasets.render import render_discs
from worldmodel.evaluation.baselines import baseline_rollout
from worldmodel.evaluation.physics import episode_metrics, tracker_floor

CONTEXT = 5


def rerender(ep, states=None, colors=None):
    a = ep.annotation
    centers = np.array(a["states"])[..., :2] if states is None else states
    radii = np.array([o["radius"] for o in a["objects"]])
    rgb = np.array([o["rgb"] for o in a["objects"]]) if colors is None else colors
    return render_discs(centers, radii, rgb, ep.frames.shape[1], ep.frames.shape[2])


def shuffled(ep):
    order = np.random.default_rng(0).permutation(np.arange(CONTEXT, len(ep.frames)))
    return np.concatenate([ep.frames[:CONTEXT], ep.frames[order]])


def teleported(ep):
    states = np.array(ep.annotation["states"])[..., :2].copy()
    mid = (CONTEXT + len(states)) // 2
    states[mid:, 0, 0] -= 20.0 * np.sign(states[mid, 0, 0] - ep.frames.shape[2] / 2)  # 20 px towards the centre
    return rerender(ep, states=states)


def colour_swapped(ep):
    rgb = np.array([o["rgb"] for o in ep.annotation["objects"]])
    if len(rgb) < 2:
        rgb = np.array([[245, 245, 245]] * len(rgb))  # a lone ball turns white (not its colour)
    swapped = np.roll(rgb, 1, axis=0)
    late = rerender(ep, colors=swapped)
    return np.concatenate([ep.frames[:CONTEXT], late[CONTEXT:]])


BROKEN = {
    "shuffled": shuffled,
    "frozen": lambda ep: baseline_rollout("copy_last", ep.frames, CONTEXT, ep.annotation),
    "teleported": teleported,
    "colour_swap": colour_swapped,
    "constant_velocity": lambda ep: baseline_rollout("constant_velocity", ep.frames, CONTEXT, ep.annotation),
}


def mean_score(episodes, make):
    return float(np.mean([episode_metrics(make(ep), ep.annotation, ep.frames, CONTEXT)["score"] for ep in episodes]))


def test_ground_truth_scores_high_and_broken_videos_clearly_lower(episodes):
    truth = [episode_metrics(ep.frames, ep.annotation, ep.frames, CONTEXT) for ep in episodes]
    assert min(m["score"] for m in truth) >= 0.98
    for name, make in BROKEN.items():
        score = mean_score(episodes, make)
        assert score < 0.8, (name, score)


def test_metrics_on_ground_truth_sit_at_the_tracker_floor(episodes):
    ep = episodes[4]  # a collision
    m = episode_metrics(ep.frames, ep.annotation, ep.frames, CONTEXT)
    floor = tracker_floor(ep.frames, ep.annotation)
    assert m["coverage"] == 1.0 and m["identity"] == 1.0 and m["iou"] == 1.0
    assert m["ade"] * ep.frames.shape[2] < 0.05 and floor["center_px"] < 0.05
    assert m["velocity_error"] < 0.05 and floor["velocity"] < 0.05


def test_baselines_keep_the_context_and_validate_input(episodes):
    ep = episodes[0]
    for kind in ("copy_last", "constant_velocity"):
        out = baseline_rollout(kind, ep.frames, CONTEXT, ep.annotation)
        assert out.shape == ep.frames.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:CONTEXT], ep.frames[:CONTEXT])
    np.testing.assert_array_equal(baseline_rollout("copy_last", ep.frames, CONTEXT, ep.annotation)[-1],
                                  ep.frames[CONTEXT - 1])
    with pytest.raises(ValueError, match="baseline must be one of"):
        baseline_rollout("oracle", ep.frames, CONTEXT, ep.annotation)
    with pytest.raises(ValueError, match="context_frames"):
        episode_metrics(ep.frames, ep.annotation, ep.frames, len(ep.frames))
    with pytest.raises(ValueError, match="like the reference"):
        episode_metrics(ep.frames[:, :32], ep.annotation, ep.frames, CONTEXT)


def test_lossy_h264_ground_truth_still_scores_high(episodes, tmp_path):
    """Browser mp4 (H.264 yuv420p) smears colour at the edges; the tracker must not read that as bad physics."""
    from worldmodel.video import read_video, write_video

    scores = []
    for ep in episodes[::2]:
        write_video(tmp_path / "clip.mp4", ep.frames)
        scores.append(episode_metrics(read_video(tmp_path / "clip.mp4"), ep.annotation, ep.frames, CONTEXT)["score"])
    assert np.mean(scores) > 0.93, scores
