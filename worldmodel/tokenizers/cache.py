"""Token cache: encode a dataset folder once, so world-model training never re-runs the encoder.

Layout of a cache folder (every file written atomically; ``meta.json`` last, so a cache exists
exactly when its ``meta.json`` does)::

    CACHE/codes.safetensors   {"codes": int32 (N, t, h, w)}
    CACHE/index.jsonl         one line per row: id, captions (all paraphrases), scenario, split
    CACHE/meta.json           codebook_size, latent_shape, frames, height, width, tokenizer config, counts

Build one with :func:`encode_dataset` / :func:`encode_videos` or ``worldmodel tokenize --tokenizer DIR
--videos DIR --out CACHE``; read it with :class:`~worldmodel.datasets.tokens.TokenDataset` /
:class:`~worldmodel.datasets.tokens.TokenDataModule`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from worldmodel.io import atomic_path, write_json_atomic, write_text_atomic
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
