"""worldmodel.datasets: the physics world (simulator, renderer, captions), episode storage and datamodules."""

from worldmodel.datasets.datamodules import PhysicsDataModule, VideoFolderDataModule
from worldmodel.datasets.folder import VideoFolderDataset
from worldmodel.datasets.physics import PhysicsVideoDataset, SimulatedDataset, collate_clips
from worldmodel.datasets.scenarios import SCENARIOS, SPLITS
from worldmodel.datasets.simulator import Episode, simulate
from worldmodel.datasets.storage import generate_dataset, read_manifest

__all__ = [
    "SCENARIOS",
    "SPLITS",
    "Episode",
    "PhysicsDataModule",
    "PhysicsVideoDataset",
    "SimulatedDataset",
    "VideoFolderDataModule",
    "VideoFolderDataset",
    "collate_clips",
    "generate_dataset",
    "read_manifest",
    "simulate",
]
