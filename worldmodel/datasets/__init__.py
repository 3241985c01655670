"""worldmodel.datasets: the physics world (simulator, renderer, captions), episode storage and datamodules.

The simulator and storage import only numpy and pymunk; the torch/Lightning datasets and data modules
are imported on first use, so that simulation workers start fast.
"""


from worldmodel.datasets.scenarios import SCENARIOS, SPLITS
from worldmodel.datasets.simulator import Episode, simulate
from worldmodel.datasets.storage import generate_dataset, read_manifest
from worldmodel.lazy import lazy_getattr

_LAZY = {
    "PhysicsDataModule": "worldmodel.datasets.datamodules",
    "VideoFolderDataModule": "worldmodel.datasets.datamodules",
    "VideoFolderDataset": "worldmodel.datasets.folder",
    "PhysicsVideoDataset": "worldmodel.datasets.physics",
    "SimulatedDataset": "worldmodel.datasets.physics",
    "collate_clips": "worldmodel.datasets.physics",
    "TokenDataModule": "worldmodel.datasets.tokens",
}

__all__ = ["SCENARIOS", "SPLITS", "Episode", "generate_dataset", "read_manifest", "simulate", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
