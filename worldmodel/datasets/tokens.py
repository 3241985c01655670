"""Token-cache datasets: :class:`TokenDataset` items and :class:`TokenDataModule` batches for world-model training.

A cache is written by :func:`worldmodel.tokenizers.cache.encode_dataset` (``worldmodel tokenize``); its layout is
described there.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from worldmodel.pretrained import load_pretrained
from worldmodel.tokenizers.cache import CODES, INDEX, META, encode_dataset, read_cache_meta
from worldmodel.tokenizers.video_tokenizer import VideoTokenizer


class TokenDataset(Dataset):
    """Items ``{"codes": LongTensor (t, h, w), "caption": str, "id": str}`` from a token cache.

    With ``random_caption`` each access draws one of the episode's paraphrases from a stream seeded by
    ``(seed, item, visit number)``, so a run is reproducible; otherwise the first caption is used.
    """

    def __init__(self, cache_dir: str | os.PathLike, seed: int = 0, random_caption: bool = True) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = read_cache_meta(self.cache_dir)
        self.codes = load_file(str(self.cache_dir / CODES))["codes"]  # (N, t, h, w) int32
        lines = (self.cache_dir / INDEX).read_text(encoding="utf-8").splitlines()
        self.index = [json.loads(line) for line in lines if line.strip()]
        if len(self.index) != self.codes.shape[0]:
            raise ValueError(f"{self.cache_dir}: {INDEX} has {len(self.index)} rows but {CODES} has "
                             f"{self.codes.shape[0]}; rebuild the cache")
        self.seed, self.random_caption = seed, random_caption
        self._visits = [0] * len(self.index)

    @property
    def codebook_size(self) -> int:
        """Codebook size of the tokenizer that made the cache."""
        return int(self.meta["codebook_size"])

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Code grid ``(t, h, w)`` of every item."""
        return tuple(self.meta["latent_shape"])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        entry = self.index[i]
        captions = entry["captions"]
        if self.random_caption and len(captions) > 1:
            caption = random.Random(f"{self.seed}:{i}:{self._visits[i]}").choice(captions)
            self._visits[i] += 1
        else:
            caption = captions[0]
        return {"codes": self.codes[i].long(), "caption": caption, "id": entry["id"]}


def collate_tokens(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch TokenDataset items: ``{"codes": (B, t, h, w), "captions": list[str], "ids": list[str]}`` (+ the
    items' ``"understanding"`` examples as a list when they hold them)."""
    batch = {"codes": torch.stack([item["codes"] for item in items]),
             "captions": [item["caption"] for item in items], "ids": [item["id"] for item in items]}
    if "understanding" in items[0]:
        batch["understanding"] = [item["understanding"] for item in items]
    return batch


class TokenDataModule(L.LightningDataModule):
    """Token-cache batches ``{"codes": LongTensor (B, t, h, w), "captions": list[str], "ids": list[str]}``.

    Args:
        train_dir, val_dir: token cache folders (``val_dir`` optional).
        tokenizer, train_videos, val_videos: when given, ``prepare_data`` builds a missing cache by
            encoding that dataset folder with the ``save_pretrained`` tokenizer at ``tokenizer``.
        batch_size, num_workers, seed: loader settings; ``seed`` fixes shuffling and caption draws.
        understanding: items also carry one understanding example each (``"understanding"``, see
            ``worldmodel.datasets.understanding_data``), from the annotations of the dataset folders the caches
            were encoded from (``train_annotations`` / ``val_annotations`` override them);
            ``context_latent_frames`` latent frames for predictive questions, ``description_share`` descriptions,
            ``read_share`` of the predictive questions shown the whole clip (read mode, for ``imagine``).
    """

    def __init__(self, train_dir: str, val_dir: str | None = None, tokenizer: str | None = None,
                 train_videos: str | None = None, val_videos: str | None = None, batch_size: int = 32,
                 num_workers: int = 0, seed: int = 0, understanding: bool = False,
                 train_annotations: str | None = None, val_annotations: str | None = None,
                 context_latent_frames: int = 2, description_share: float = 0.25, read_share: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.train_set: TokenDataset | None = None
        self.val_set: TokenDataset | None = None

    def prepare_data(self) -> None:
        """Encode the video folders whose caches are missing (needs ``tokenizer``)."""
        hp = self.hparams
        jobs = [(hp.train_videos, hp.train_dir), (hp.val_videos, hp.val_dir)]
        missing = [(videos, cache) for videos, cache in jobs if videos and cache and not (Path(cache) / META).is_file()]
        if not missing:
            return
        if not hp.tokenizer:
            raise ValueError("TokenDataModule needs `tokenizer` (a save_pretrained folder) to build missing caches")
        tokenizer = load_pretrained(VideoTokenizer, hp.tokenizer)
        for videos, cache in missing:
            encode_dataset(tokenizer, videos, cache)

    def setup(self, stage: str | None = None) -> None:
        """Open the caches."""
        hp = self.hparams
        if hp.understanding:
            from worldmodel.datasets.understanding_data import UnderstandingTokenDataset

            settings = {"context_latent_frames": hp.context_latent_frames, "description_share": hp.description_share,
                        "seed": hp.seed, "read_share": hp.read_share}
            self.train_set = UnderstandingTokenDataset(hp.train_dir, hp.train_annotations, **settings)
            self.val_set = (UnderstandingTokenDataset(hp.val_dir, hp.val_annotations, redraw=False, **settings)
                            if hp.val_dir else None)
            return
        self.train_set = TokenDataset(hp.train_dir, seed=hp.seed)
        self.val_set = TokenDataset(hp.val_dir, seed=hp.seed, random_caption=False) if hp.val_dir else None

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (seeded)."""
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True, drop_last=True,
                          generator=generator, num_workers=self.hparams.num_workers, collate_fn=collate_tokens,
                          persistent_workers=self.hparams.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in cache order (first captions); empty without ``val_dir``."""
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_tokens)
