"""Token cache: encode a dataset folder once, read it back as TokenDataset / TokenDataModule batches."""

import json

import numpy as np
import pytest
import torch

from worldmodel.datasets.tokens import TokenDataModule, TokenDataset
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.tokenizers.cache import encode_dataset
from worldmodel.video import write_video


def _dataset(root, n=5, frames=5, size=32, corrupt=()):
    """A dataset folder in the `worldmodel data generate` layout with random videos and 3 captions each."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        ident = f"ep{i}"
        video = f"videos/{ident}.mkv"
        if i in corrupt:
            (root / "videos").mkdir(parents=True, exist_ok=True)
            (root / video).write_bytes(b"not a video")
        else:
            write_video(root / video, rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
        annotation = f"annotations/{ident}.json"
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / annotation).write_text(json.dumps({"captions": [f"ball {i} a", f"ball {i} b", f"ball {i} c"]}))
        lines.append(json.dumps({"id": ident, "video": video, "annotation": annotation, "caption": f"ball {i} a",
                                 "scenario": "uniform", "split": "train", "frames": frames, "height": size,
                                 "width": size, "fps": 10.0}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return VideoTokenizer(channels=(8, 8, 8), patch_size=4).eval()


def test_encode_dataset_matches_direct_encoding(tmp_path, tokenizer):
    data = _dataset(tmp_path / "data")
    cache = encode_dataset(tokenizer, data, tmp_path / "cache", batch_size=2, progress=False)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["latent_shape"] == [2, 4, 4] and meta["codebook_size"] == 1000 and meta["episodes"] == 5
    ds = TokenDataset(cache, seed=0)
    assert len(ds) == 5 and ds.latent_shape == (2, 4, 4) and ds.codebook_size == 1000
    from worldmodel.video import read_video

    for i in (0, 3):
        item = ds[i]
        direct = tokenizer.encode(read_video(data / f"videos/ep{i}.mkv"))[0]
        assert item["id"] == f"ep{i}" and item["codes"].dtype == torch.long
        assert torch.equal(item["codes"], direct)
        assert item["caption"] in {f"ball {i} a", f"ball {i} b", f"ball {i} c"}
    assert not list(cache.glob(".*tmp*"))  # no temporary files left behind


def test_captions_are_seeded_paraphrases(tmp_path, tokenizer):
    cache = encode_dataset(tokenizer, _dataset(tmp_path / "data", n=2), tmp_path / "cache", progress=False)
    draws = [[TokenDataset(cache, seed=s)[0]["caption"] for _ in range(1)] for s in range(2)]
    first = TokenDataset(cache, seed=3)
    again = TokenDataset(cache, seed=3)
    seq1 = [first[1]["caption"] for _ in range(12)]
    seq2 = [again[1]["caption"] for _ in range(12)]
    assert seq1 == seq2 and len(set(seq1)) > 1  # reproducible, and every access may pick another paraphrase
    assert all(d[0].startswith("ball 0") for d in draws)
    assert TokenDataset(cache, random_caption=False)[1]["caption"] == "ball 1 a"


def test_corrupt_videos_are_skipped_or_fatal_when_strict(tmp_path, tokenizer):
    data = _dataset(tmp_path / "data", n=4, corrupt=(1,))
    with pytest.warns(UserWarning, match="ep1.mkv"):
        cache = encode_dataset(tokenizer, data, tmp_path / "cache", progress=False)
    meta = json.loads((cache / "meta.json").read_text())
    assert meta["episodes"] == 3 and meta["skipped"] == 1
    assert [TokenDataset(cache)[i]["id"] for i in range(3)] == ["ep0", "ep2", "ep3"]
    with pytest.raises(ValueError, match="ep1.mkv"):
        encode_dataset(tokenizer, data, tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict" / "meta.json").exists()


def test_bad_folders_give_clear_errors(tmp_path, tokenizer):
    with pytest.raises(FileNotFoundError, match="not a complete token cache"):
        TokenDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="manifest"):
        encode_dataset(tokenizer, tmp_path, tmp_path / "cache", progress=False)
    with pytest.raises(ValueError, match="6 frames"):
        encode_dataset(tokenizer, _dataset(tmp_path / "six", n=1, frames=6), tmp_path / "c6", progress=False)


def test_datamodule_builds_missing_cache_and_batches(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    data = _dataset(tmp_path / "data", n=5)
    dm = TokenDataModule(train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"),
                         tokenizer=str(tmp_path / "tok"), train_videos=str(data), val_videos=str(data),
                         batch_size=2, seed=1)
    dm.prepare_data()
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2  # 5 items, batch 2, last partial batch dropped
    assert batches[0]["codes"].shape == (2, 2, 4, 4) and batches[0]["codes"].dtype == torch.long
    assert len(batches[0]["captions"]) == 2 and all(isinstance(c, str) for c in batches[0]["captions"])
    val = list(dm.val_dataloader())
    assert sum(b["codes"].shape[0] for b in val) == 5
    again = TokenDataModule(train_dir=str(tmp_path / "train"), batch_size=2, seed=1)
    again.setup("fit")
    assert [b["ids"] for b in again.train_dataloader()] == [b["ids"] for b in batches]
    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok")  # its config holds a Path: meta.json must cope
    encode_dataset(loaded, data, tmp_path / "from_path", progress=False)
    assert torch.equal(TokenDataset(tmp_path / "from_path")[0]["codes"], TokenDataset(tmp_path / "train")[0]["codes"])
