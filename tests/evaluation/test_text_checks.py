"""Text adherence and the ground-truth-free physics checks on simulator renders and on broken ones."""

import numpy as np

from worldmodel.datasets import simulate
from worldmodel.datasets.render import render_discs
from worldmodel.evaluation.checks import physics_checks
from worldmodel.evaluation.text_adherence import text_adherence
from worldmodel.evaluation.tracking import track_episode


def test_captions_of_simulator_renders_are_adhered_to():
    for scenario in ("uniform", "parabola", "collision", "bounce"):
        ep = simulate(scenario, "test_id", 1)
        result = text_adherence(ep.frames, ep.captions[0])
        assert result["score"] == 1.0, (ep.captions[0], result)


def test_wrong_colour_count_and_direction_are_caught():
    ep = simulate("uniform", "test_id", 1)  # a large green ball moves up and to the left
    wrong = text_adherence(ep.frames, "two balls, a red one and a blue one, move down and to the right")
    assert not wrong["checks"]["color:red"] and not wrong["checks"]["count"]
    assert wrong["score"] < 0.5
    moving_wrong = text_adherence(ep.frames, "a green ball moves down and to the right")
    assert moving_wrong["checks"] == {"color:green": True, "count": True, "direction:green": False}


def test_physics_checks_pass_on_truth_and_catch_broken_physics():
    ep = simulate("collision", "test_id", 0)
    a = ep.annotation
    masses = [o["mass"] for o in a["objects"]]
    truth = physics_checks(track_episode(ep.frames, a), a["fps"], a["pixels_per_unit"], a["gravity"],
                           expected_count=2, masses=masses)
    assert truth["score"] == 1.0 and truth["passed"]["momentum"]
    # the two balls pass through each other instead of colliding, and gravity is claimed to be strong
    start = np.array(a["states"])[:2, :, :2]
    velocity = start[1] - start[0]
    ghost_states = start[0] + np.arange(len(ep.frames))[:, None, None] * velocity  # (T, 2, 2)
    radii = np.array([o["radius"] for o in a["objects"]])
    rgb = np.array([o["rgb"] for o in a["objects"]])
    ghost = render_discs(ghost_states, radii, rgb, 64, 64)
    broken = physics_checks(track_episode(ghost, a), a["fps"], a["pixels_per_unit"], [0.0, 160.0],
                            expected_count=3, masses=masses)
    assert not broken["passed"]["interpenetration"] and not broken["passed"]["gravity"]
    assert not broken["passed"]["object_count"] and broken["score"] < 0.5


def test_noise_adheres_to_no_prompt():
    """Random pixels contain every colour somewhere, but no ball: nothing named in the prompt is found."""
    noise = np.random.default_rng(0).integers(0, 256, size=(17, 64, 64, 3), dtype=np.uint8)
    result = text_adherence(noise, "a medium purple ball is thrown to the right and falls in a parabola")
    assert result["found"] == []
    assert result["score"] == 0.0
    assert all(isinstance(v, bool) for v in result["checks"].values())
