"""The colour tracker on the simulator's own renders: centres within 0.1 px, radii within 0.1 px."""

import numpy as np
import pytest

from worldmodel.datasets import SCENARIOS, simulate
from worldmodel.evaluation.tracking import track_episode, track_objects


@pytest.mark.parametrize("split", ["test_id", "test_ood"])
def test_tracker_is_sub_pixel_on_simulator_renders(split):
    checked = 0
    for scenario in SCENARIOS:
        for seed in range(3):
            ep = simulate(scenario, split, seed)
            tracks = track_episode(ep.frames, ep.annotation)
            states = np.array(ep.annotation["states"])[..., :2]  # (T, N, 2)
            radius = np.array([o["radius"] for o in ep.annotation["objects"]])
            ok = tracks.visible.copy()  # fully visible and not touching another ball
            for i in range(len(radius)):
                for j in range(len(radius)):
                    if i != j:
                        ok[:, i] &= np.linalg.norm(states[:, i] - states[:, j], axis=-1) > radius[i] + radius[j] + 1
            err = np.linalg.norm(tracks.centers - states, axis=-1)[ok]
            assert err.max() < 0.1, (scenario, seed, err.max())
            assert np.abs(tracks.radii - radius)[ok].max() < 0.1
            checked += ok.sum()
    assert checked > 200


def test_tracker_reports_absence_and_border_contact():
    frames = np.full((2, 32, 32, 3), (20, 20, 24), np.uint8)
    frames[1, 0:6, 10:16] = (230, 30, 30)  # a red square touching the top border in frame 1
    tracks = track_objects(frames, np.array([[230, 30, 30], [30, 200, 50]]))
    assert not tracks.present[0].any()
    assert tracks.present[1, 0] and not tracks.visible[1, 0] and not tracks.present[1, 1]
    np.testing.assert_allclose(tracks.centers[1, 0], [12.5, 2.5])
    assert np.isnan(tracks.centers[0]).all()
