"""Datasets of physics episodes: stored (``PhysicsVideoDataset``) or simulated on the fly (``SimulatedDataset``).

Both yield ``{"video": uint8 tensor (T, H, W, 3), "caption": str, "id": str}`` and agree exactly:
item ``i`` of ``SimulatedDataset(seed=S, split=P, scenarios=C)`` is episode ``i`` of
``generate_dataset(..., seed=S, split=P, scenarios=C)``.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, DistributedSampler

from worldmodel.datasets.scenarios import check_scenario_split
from worldmodel.datasets.simulator import check_frames_size, simulate
from worldmodel.datasets.storage import episode_id, episode_seed, parse_scenarios, read_manifest
from worldmodel.video import VideoReadError, read_video


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch items: ``{"video": uint8 (B, T, H, W, 3), "captions": list[str], "ids": list[str]}``."""
    return {
        "video": torch.stack([item["video"] for item in items]),
        "captions": [item["caption"] for item in items],
        "ids": [item["id"] for item in items],
    }


class SkippingDataset(Dataset, ABC):
    """Base for datasets of files: an unreadable item is skipped (warning + counter) or, strict, raises.

    A skipped index is replaced by the next readable one, so a long run never dies on one corrupt file.
    ``skipped`` counts the files skipped in this process (each DataLoader worker has its own count).
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped = 0
        self._bad: set[int] = set()

    @abstractmethod
    def __len__(self) -> int:
        """Number of items, readable or not."""

    @abstractmethod
    def load(self, index: int) -> dict[str, Any]:
        """Read item ``index``; raise ``VideoReadError`` naming the file when it is unusable."""

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                return self.load(i)
            except VideoReadError as err:
                if self.strict:
                    raise
                self._bad.add(i)
                self.skipped += 1
                warnings.warn(f"skipping unreadable video ({err}); {self.skipped} skipped so far", stacklevel=2)
        raise VideoReadError(f"none of the {n} videos of this dataset could be read")


class PhysicsVideoDataset(SkippingDataset):
    """Episodes stored by ``generate_dataset``: reads ``root/manifest.jsonl`` and the lossless videos.

    Args:
        root: dataset folder.
        backend: ``"decord"`` (falls back to PyAV per file) or ``"pyav"``. Readers are opened per item,
            so they are always created inside the DataLoader worker that uses them.
        strict: raise on an unreadable, truncated or mismatched video instead of skipping it.
    """

    def __init__(self, root: str | os.PathLike, backend: str = "decord", strict: bool = False) -> None:
        super().__init__(strict)
        if backend not in ("decord", "pyav"):
            raise ValueError(f"backend must be 'decord' or 'pyav', got {backend!r}")
        self.root = Path(root)
        self.backend = backend
        self.records = read_manifest(self.root)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> dict[str, Any]:
        """Read and check one episode's video."""
        record = self.records[index]
        path = self.root / record["video"]
        video = read_video(path, backend=self.backend)  # (T, H, W, 3)
        expected = (record["frames"], record["height"], record["width"], 3)
        if video.shape != expected:
            raise VideoReadError(f"{path}: decoded shape {video.shape}, the manifest says {expected} (truncated?)")
        return {"video": torch.from_numpy(video), "caption": record["caption"], "id": record["id"]}


class SimulatedDataset(Dataset):
    """Episodes simulated on demand: endless, seeded training data without files.

    ``length`` is the nominal epoch length; any non-negative index is valid (index ``i`` is episode
    ``i`` of the seeded stream), which :class:`EpochSampler` uses to draw fresh episodes every epoch.
    """

    def __init__(self, length: int, split: str = "train", scenarios: str | Sequence[str] | None = None,
                 frames: int = 17, size: int = 64, fps: float = 10.0, seed: int = 0) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        check_scenario_split("uniform", split)
        check_frames_size(frames, size)
        self.length, self.split, self.frames, self.size, self.fps, self.seed = length, split, frames, size, fps, seed
        self.scenarios = parse_scenarios(scenarios)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index < 0:
            raise IndexError(f"index must be non-negative, got {index}")
        scenario = self.scenarios[index % len(self.scenarios)]
        episode = simulate(scenario, self.split, episode_seed(self.seed, index), self.frames, self.size, self.fps)
        return {"video": torch.from_numpy(episode.frames), "caption": episode.captions[0],
                "id": episode_id(self.split, index, scenario)}


class EpochSampler(DistributedSampler):
    """Indices ``epoch * length + j``: a fresh block of simulated episodes every epoch.

    Lightning calls ``set_epoch`` at each epoch. It is a ``DistributedSampler`` so that Lightning keeps
    it under DDP; each rank takes every ``num_replicas``-th index of the block (the same count on
    every rank, so ranks never wait for each other).
    """

    def __init__(self, dataset: SimulatedDataset, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=True)

    def __len__(self) -> int:
        return len(self.dataset) // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * len(self.dataset) + self.rank
        return iter(range(start, start + len(self) * self.num_replicas, self.num_replicas))
