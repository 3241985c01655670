"""worldmodel.datasets: the physics world (simulator, renderer, captions), episode storage and datamodules."""

from worldmodel.datasets.scenarios import SCENARIOS, SPLITS
from worldmodel.datasets.simulator import Episode, simulate

__all__ = ["SCENARIOS", "SPLITS", "Episode", "simulate"]
