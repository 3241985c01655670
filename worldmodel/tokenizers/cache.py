"""Token cache: encode a dataset folder once, so world-model training never re-runs the encoder.

Layout of a cache folder (every file written atomically; ``meta.json`` last, so a cache exists
exactly when its ``meta.json`` does)::

    CACHE/codes.safetensors   {"codes": int32 (N, t, h, w)}
    CACHE/index.jsonl         one line per row: id, captions (all paraphrases), scenario, split
    CACHE/meta.json           codebook_size, latent_shape, frames, height, width, tokenizer config, counts

Build one with :func:`encode_dataset` / :func:`encode_videos` or ``worldmodel tokenize --tokenizer DIR
--videos DIR --out CACHE``; read it with :class:`TokenDataset` / :class:`TokenDataModule`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from worldmodel.io import atomic_path, write_json_atomic, write_text_atomic
from worldmodel.pretrained import load_pretrained
from worldmodel.tokenizers.video_tokenizer import VideoTokenizer
from worldmodel.video import VideoReadError, read_video

CODES = "codes.safetensors"
INDEX = "index.jsonl"
META = "meta.json"


class _ManifestVideos(Dataset):
    """Reads the videos of a dataset folder's manifest; a corrupt file gives ``None`` instead of frames."""

    def __init__(self, root: Path, records: list[dict[str, Any]]) -> None:
        self.root, self.records = root, records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        path = self.root / self.records[i]["video"]
        try:
            return i, torch.from_numpy(read_video(path)), ""
        except VideoReadError as err:
            return i, None, str(err)


def _captions(root: Path, record: dict[str, Any]) -> list[str]:
    """All caption paraphrases of a manifest record (from its annotation when there is one)."""
    annotation = record.get("annotation")
    if annotation and (root / annotation).is_file():
        captions = json.loads((root / annotation).read_text(encoding="utf-8")).get("captions")
        if captions:
            return [str(c) for c in captions]
    return [str(record.get("caption", ""))]


@torch.no_grad()
def encode_dataset(tokenizer: VideoTokenizer, dataset_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   batch_size: int = 16, num_workers: int = 0, strict: bool = False,
                   progress: bool = True) -> Path:
    """Encode every video of a dataset folder (``manifest.jsonl``) into a token cache at ``out_dir``.

    Videos that cannot be read are skipped with a warning (``strict=True`` raises instead). All videos
    must share one frame count and size. Returns ``out_dir``.
    """
    from worldmodel.datasets.storage import read_manifest

    root, out_dir = Path(dataset_dir), Path(out_dir)
    records = read_manifest(root)
    if not records:
        raise ValueError(f"{root}: the manifest lists no episodes")
    shapes = {(r["frames"], r["height"], r["width"]) for r in records}
    if len(shapes) != 1:
        raise ValueError(f"{root}: videos must share one frame count and size to be cached, found {sorted(shapes)}")
    frames, height, width = shapes.pop()
    latent_shape = tokenizer.latent_shape(frames, height, width)
    tokenizer.eval()
    loader = DataLoader(_ManifestVideos(root, records), batch_size=batch_size, num_workers=num_workers,
                        collate_fn=list)
    rows: list[torch.Tensor] = []
    index: list[dict[str, Any]] = []
    skipped = 0
    bar = tqdm(total=len(records), desc=f"encoding {root.name}", unit="video", disable=not progress)
    for batch in loader:
        good = []
        for i, video, error in batch:
            if video is None or tuple(video.shape[:3]) != (frames, height, width):
                message = error or f"{records[i]['video']}: shape {tuple(video.shape)} differs from the manifest"
                if strict:
                    raise ValueError(message)
                warnings.warn(f"skipping {message}", stacklevel=2)
                skipped += 1
                continue
            good.append((i, video))
        if good:
            codes = tokenizer.encode(torch.stack([v for _, v in good]))  # (b, t, h, w)
            rows.append(codes.to(torch.int32).cpu())
            for i, _ in good:
                r = records[i]
                index.append({"id": r["id"], "captions": _captions(root, r), "scenario": r.get("scenario"),
                              "split": r.get("split")})
        bar.update(len(batch))
    bar.close()
    if not rows:
        raise ValueError(f"{root}: none of the {len(records)} videos could be read")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / META).unlink(missing_ok=True)  # the cache is incomplete until meta.json is back
    with atomic_path(out_dir / CODES) as tmp:
        save_file({"codes": torch.cat(rows).contiguous()}, str(tmp))
    write_text_atomic(out_dir / INDEX, "".join(json.dumps(line) + "\n" for line in index))
    write_json_atomic(out_dir / META, {
        "codebook_size": tokenizer.codebook_size, "latent_shape": list(latent_shape), "frames": frames,
        "height": height, "width": width, "episodes": len(index), "skipped": skipped,
        "dataset": str(root), "tokenizer": json.loads(tokenizer.to_json_string())})
    return out_dir


def encode_videos(tokenizer: VideoTokenizer, videos: str | os.PathLike, out_dir: str | os.PathLike,
                  frames: int = 17, size: int = 64, fps: float = 10.0, captions: str | os.PathLike | None = None,
                  batch_size: int = 16, progress: bool = True) -> Path:
    """Encode any folder of videos into a token cache at ``out_dir``.

    Clips of ``frames`` frames at ``fps``, ``size`` x ``size`` are cut first into ``out_dir/clips`` (see
    :func:`~worldmodel.datasets.clips.extract_clips`: unusable files are skipped and listed in
    ``out_dir/clips/clips.json`` and in ``meta.json``), then encoded by :func:`encode_dataset`.
    """
    from worldmodel.datasets.clips import extract_clips

    out_dir = Path(out_dir)
    record = extract_clips(videos, out_dir / "clips", frames=frames, size=size, fps=fps, captions=captions,
                           progress=progress)
    encode_dataset(tokenizer, out_dir / "clips", out_dir, batch_size=batch_size, progress=progress)
    meta = read_cache_meta(out_dir)
    write_json_atomic(out_dir / META, {**meta, "skipped_files": record["skipped"]})
    return out_dir


def read_cache_meta(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``meta.json`` of a complete token cache (clear error when the folder is not one)."""
    path = Path(cache_dir) / META
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a complete token cache; build one with "
                                "`worldmodel tokenize --tokenizer DIR --videos DIR --out CACHE`")
    return json.loads(path.read_text(encoding="utf-8"))


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
            ``context_latent_frames`` latent frames for predictive questions, ``description_share`` descriptions.
    """

    def __init__(self, train_dir: str, val_dir: str | None = None, tokenizer: str | None = None,
                 train_videos: str | None = None, val_videos: str | None = None, batch_size: int = 32,
                 num_workers: int = 0, seed: int = 0, understanding: bool = False,
                 train_annotations: str | None = None, val_annotations: str | None = None,
                 context_latent_frames: int = 2, description_share: float = 0.25) -> None:
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
                        "seed": hp.seed}
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


def main(argv: list[str] | None = None) -> int:
    """``python -m worldmodel.tokenizers.cache --tokenizer DIR --data DATASET --out CACHE``."""
    parser = argparse.ArgumentParser(description="Encode a dataset folder into a token cache.")
    parser.add_argument("--tokenizer", required=True, type=Path, help="save_pretrained folder of a VideoTokenizer")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder with manifest.jsonl")
    parser.add_argument("--out", required=True, type=Path, help="cache folder to write")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="fail on the first unreadable video")
    args = parser.parse_args(argv)
    try:
        tokenizer = load_pretrained(VideoTokenizer, args.tokenizer)
        out = encode_dataset(tokenizer, args.data, args.out, batch_size=args.batch_size,
                             num_workers=args.workers, strict=args.strict)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
