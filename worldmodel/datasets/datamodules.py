"""Lightning data modules: ``PhysicsDataModule`` (simulated or stored episodes) and ``VideoFolderDataModule``.

Batches are ``{"video": uint8 (B, T, H, W, 3), "captions": list[str], "ids": list[str]}``.

Validation data:

- ``PhysicsDataModule(root=None)``: training episodes are simulated on the fly (split ``train``, a
  fresh block of ``episodes_per_epoch`` episodes every epoch); validation is a fixed set of
  ``val_episodes`` simulated episodes of split ``val``.
- With a ``root`` (or for ``VideoFolderDataModule``): ``val_root`` when given, else the last
  ``val_fraction`` of the episodes of ``root`` (manifest order; for video folders, sorted file names)
  are held out (at least one when there are two or more); training uses the rest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from worldmodel.datasets.folder import VideoFolderDataset
from worldmodel.datasets.physics import EpochSampler, PhysicsVideoDataset, SimulatedDataset, collate_clips


def holdout_split(dataset: Dataset, fraction: float) -> tuple[Dataset, Dataset]:
    """Split off the last ``fraction`` of ``dataset`` (at least one item when it has two or more)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction!r}")
    n = len(dataset)
    n_val = min(n - 1, max(1, math.ceil(fraction * n))) if fraction > 0 else 0
    return Subset(dataset, range(n - n_val)), Subset(dataset, range(n - n_val, n))


class _ClipDataModule(L.LightningDataModule):
    """Shared loaders: shuffled (seeded) training, sequential validation, ``collate_clips`` batches."""

    def __init__(self, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def _loader(self, dataset: Dataset, **kwargs) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          collate_fn=collate_clips, persistent_workers=self.num_workers > 0, **kwargs)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (the order is a function of ``seed`` and the epoch)."""
        self.setup("fit")
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self.train_set, shuffle=True, generator=generator, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order."""
        self.setup("validate")
        return self._loader(self.val_set, shuffle=False)


class PhysicsDataModule(_ClipDataModule):
    """Physics episodes for training: simulated on the fly (``root=None``) or read from a generated folder.

    Args:
        root: folder written by ``worldmodel data generate``; ``None`` simulates episodes on the fly.
        batch_size, num_workers: DataLoader settings.
        frames, size, fps: clip length, frame size and frame rate (checked against a stored dataset).
        episodes_per_epoch: epoch length when simulating.
        val_episodes: size of the fixed simulated validation set (``root=None``).
        scenarios: scenario names (``None`` for all) when simulating.
        seed: seeds the simulated episodes and the shuffling.
        val_root: folder of validation episodes for a stored dataset.
        val_fraction: share of ``root`` held out for validation when ``val_root`` is not given.
        backend: video reader for stored episodes (``decord`` or ``pyav``).
        strict: raise on a corrupt stored video instead of skipping it.
    """

    def __init__(self, root: str | None = None, batch_size: int = 8, num_workers: int = 0, frames: int = 17,
                 size: int = 64, fps: float = 10.0, episodes_per_epoch: int = 1024, val_episodes: int = 64,
                 scenarios: Sequence[str] | str | None = None, seed: int = 0, val_root: str | None = None,
                 val_fraction: float = 0.05, backend: str = "decord", strict: bool = False) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.root, self.val_root = root, val_root
        self.frames, self.size, self.fps = frames, size, fps
        self.episodes_per_epoch, self.val_episodes = episodes_per_epoch, val_episodes
        self.scenarios, self.val_fraction = scenarios, val_fraction
        self.backend, self.strict = backend, strict

    def _stored(self, root: str | os.PathLike) -> PhysicsVideoDataset:
        dataset = PhysicsVideoDataset(root, backend=self.backend, strict=self.strict)
        for record in dataset.records:
            if (record["frames"], record["height"], record["width"]) != (self.frames, self.size, self.size):
                raise ValueError(f"{root}: episode {record['id']} has {record['frames']} frames of "
                                 f"{record['height']}x{record['width']}, the data module expects {self.frames} "
                                 f"frames of {self.size}x{self.size} (set frames/size to match)")
        return dataset

    def setup(self, stage: str | None = None) -> None:
        """Build the training and validation datasets (once)."""
        if self.train_set is not None:
            return
        if self.root is None:
            common = {"scenarios": self.scenarios, "frames": self.frames, "size": self.size, "fps": self.fps,
                      "seed": self.seed}
            self.train_set = SimulatedDataset(self.episodes_per_epoch, "train", **common)
            self.val_set = SimulatedDataset(self.val_episodes, "val", **common)
        elif self.val_root is not None:
            self.train_set, self.val_set = self._stored(self.root), self._stored(self.val_root)
        else:
            self.train_set, self.val_set = holdout_split(self._stored(self.root), self.val_fraction)

    def train_dataloader(self) -> DataLoader:
        """Simulated: a fresh block of episodes per epoch (sharded across DDP ranks); stored: shuffled."""
        self.setup("fit")
        if not isinstance(self.train_set, SimulatedDataset):
            return super().train_dataloader()
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return self._loader(self.train_set, sampler=EpochSampler(self.train_set, num_replicas=world, rank=rank),
                            drop_last=True)


class VideoFolderDataModule(_ClipDataModule):
    """Clips from a folder of user videos (see :class:`VideoFolderDataset`).

    Args:
        root: folder of videos for training (and validation, unless ``val_root`` is given).
        frames, size: clip length and square frame size.
        batch_size, num_workers: DataLoader settings.
        val_root: folder of validation videos.
        val_fraction: share of ``root`` held out for validation when ``val_root`` is not given.
        seed: seeds clip starts and shuffling.
        strict: raise on an unreadable video instead of skipping it.
    """

    def __init__(self, root: str, frames: int = 17, size: int = 64, batch_size: int = 8, num_workers: int = 0,
                 val_root: str | None = None, val_fraction: float = 0.05, seed: int = 0, strict: bool = False) -> None:
        super().__init__(batch_size, num_workers, seed)
        self.root, self.val_root, self.val_fraction = root, val_root, val_fraction
        self.frames, self.size, self.strict = frames, size, strict

    def setup(self, stage: str | None = None) -> None:
        """Build the training and validation datasets (once)."""
        if self.train_set is not None:
            return

        def folder(root: str) -> VideoFolderDataset:
            return VideoFolderDataset(root, self.frames, self.size, seed=self.seed, strict=self.strict)

        if self.val_root is not None:
            self.train_set, self.val_set = folder(self.root), folder(self.val_root)
        else:
            self.train_set, self.val_set = holdout_split(folder(self.root), self.val_fraction)
