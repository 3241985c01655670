"""Datasets and data modules: stored vs simulated agreement, corrupt files, epochs, video folders, Lightning."""

import json
import warnings

import numpy as np
import pytest
import torch

from worldmodel.datasets import (
    PhysicsDataModule,
    PhysicsVideoDataset,
    SimulatedDataset,
    VideoFolderDataModule,
    VideoFolderDataset,
    generate_dataset,
)
from worldmodel.datasets.physics import EpochSampler
from worldmodel.video import VideoReadError, write_video


@pytest.fixture
def stored(tmp_path):
    """Six stored episodes of 5 frames of 32x32."""
    generate_dataset(tmp_path / "d", 6, seed=2, split="train", frames=5, size=32)
    return tmp_path / "d"


def test_stored_items_equal_simulated_items(stored):
    ds, sim = PhysicsVideoDataset(stored, backend="decord"), SimulatedDataset(6, frames=5, size=32, seed=2)
    assert len(ds) == 6
    for i in range(6):
        a, b = ds[i], sim[i]
        assert a["video"].dtype == torch.uint8 and a["video"].shape == (5, 32, 32, 3)
        assert torch.equal(a["video"], b["video"]) and (a["caption"], a["id"]) == (b["caption"], b["id"])


def corrupt(root):
    """Damage four of the six videos: truncated, zero bytes, not a video, missing."""
    videos = sorted((root / "videos").iterdir())
    data = videos[1].read_bytes()
    videos[1].write_bytes(data[: len(data) // 2])
    videos[2].write_bytes(b"")
    videos[3].write_text("this is not a video\n" * 50)
    videos[4].unlink()
    return [v.name for v in videos[1:5]]


def test_corrupt_files_are_skipped_with_a_warning_and_counted(stored):
    corrupt(stored)
    ds = PhysicsVideoDataset(stored)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = [ds[i]["id"] for i in range(len(ds))]
    assert ds.skipped == 4 and len(caught) == 4
    assert all("skipping unreadable video" in str(w.message) for w in caught)
    good = {ds.records[0]["id"], ds.records[5]["id"]}
    assert set(ids) == good and ids[0] == ds.records[0]["id"] and ids[1] == ds.records[5]["id"]


def test_strict_mode_names_the_bad_file(stored):
    names = corrupt(stored)
    ds = PhysicsVideoDataset(stored, strict=True)
    ds[0]
    for i, name in enumerate(names, start=1):
        with pytest.raises(VideoReadError, match=name):
            ds[i]


def test_workers_skip_corrupt_files(stored):
    corrupt(stored)
    dm = PhysicsDataModule(str(stored), batch_size=2, num_workers=2, frames=5, size=32, val_fraction=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(dm.train_dataloader())
    assert len(batches) == 2 and all(b["video"].shape == (2, 5, 32, 32, 3) for b in batches)


def test_stored_data_module_holds_out_validation_and_checks_sizes(stored, tmp_path):
    dm = PhysicsDataModule(str(stored), batch_size=2, frames=5, size=32, val_fraction=0.3)
    train, val = list(dm.train_dataloader()), list(dm.val_dataloader())
    train_ids = [i for b in train for i in b["ids"]]
    assert len(train_ids) == 4 and [i for b in val for i in b["ids"]] == [f"train_00000{k}_{s}" for k, s in
                                                                         ((4, "multi"), (5, "uniform"))]
    assert set(train[0]) == {"video", "captions", "ids"} and isinstance(train[0]["captions"][0], str)
    with pytest.raises(ValueError, match="expects 17 frames of 64x64"):
        PhysicsDataModule(str(stored)).setup("fit")
    with pytest.raises(FileNotFoundError, match="no manifest"):
        PhysicsDataModule(str(tmp_path / "nothing")).setup("fit")


def test_simulated_epochs_are_fresh_and_ranks_disjoint():
    sim = SimulatedDataset(10, frames=3, size=16)
    sampler = EpochSampler(sim)
    first = list(sampler)
    sampler.set_epoch(1)
    assert first == list(range(10)) and list(sampler) == list(range(10, 20))
    ranks = [list(EpochSampler(sim, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(r) for r in ranks] == [3, 3, 3] and len(set(sum(ranks, []))) == 9
    assert sim[12]["id"] == "train_000012_bounce"  # any index is valid: episode 12 of the stream


def test_simulated_data_module_batches():
    dm = PhysicsDataModule(batch_size=3, frames=5, size=16, episodes_per_epoch=6, val_episodes=3, seed=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (3, 5, 16, 16, 3) and batch["video"].dtype == torch.uint8
    assert batch["ids"] == ["train_000000_uniform", "train_000001_parabola", "train_000002_bounce"]
    val = next(iter(dm.val_dataloader()))
    assert val["ids"][0].startswith("val_") and len(val["captions"]) == 3


def test_lightning_draws_new_episodes_every_epoch():
    import lightning as L

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.seen = []

        def training_step(self, batch, _):
            self.seen.append((self.current_epoch, tuple(batch["ids"])))
            return (self.weight * batch["video"].float().mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = Recorder()
    dm = PhysicsDataModule(batch_size=2, frames=3, size=16, episodes_per_epoch=4, val_episodes=2)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    by_epoch = {e: {i for _, ids in model.seen if _ == e for i in ids} for e in (0, 1)}
    assert len(by_epoch[0]) == 4 and len(by_epoch[1]) == 4 and not by_epoch[0] & by_epoch[1]


@pytest.fixture
def folder(tmp_path):
    """A folder of user videos: sizes differ, one in a sub-folder, one too short, one garbage."""
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    write_video(tmp_path / "wide.mp4", rng.integers(0, 255, (30, 48, 80, 3), dtype=np.uint8))
    write_video(tmp_path / "sub" / "b.mkv", rng.integers(0, 255, (20, 40, 40, 3), dtype=np.uint8))
    write_video(tmp_path / "short.mp4", rng.integers(0, 255, (4, 40, 40, 3), dtype=np.uint8))
    (tmp_path / "broken.avi").write_bytes(b"\x00garbage" * 64)
    (tmp_path / "wide.txt").write_text("a sidecar caption\n")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"video": "sub/b.mkv", "caption": "from jsonl"}) + "\n")
    (tmp_path / "notes.txt").write_text("not a video")
    return tmp_path


def test_video_folder_clips_captions_and_skips(folder):
    ds = VideoFolderDataset(folder, frames=8, size=24, seed=1)
    assert [p.name for p in ds.files] == ["broken.avi", "short.mp4", "b.mkv", "wide.mp4"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [ds[i] for i in range(len(ds))]
    assert ds.skipped == 2 and len(caught) == 2 and "has 4 frames, a clip needs 8" in str(caught[1].message)
    assert [it["id"] for it in items] == ["sub/b.mkv", "sub/b.mkv", "sub/b.mkv", "wide.mp4"]
    assert items[0]["caption"] == "from jsonl" and items[3]["caption"] == "a sidecar caption"
    assert all(it["video"].shape == (8, 24, 24, 3) and it["video"].dtype == torch.uint8 for it in items)
    again = VideoFolderDataset(folder, frames=8, size=24, seed=1)[3]["video"]
    assert torch.equal(again, items[3]["video"])
    with pytest.raises(VideoReadError, match="broken.avi"):
        VideoFolderDataset(folder, frames=8, size=24, strict=True)[0]


def test_video_folder_data_module(folder, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(ValueError, match="no videos found"):
        VideoFolderDataset(empty)
    dm = VideoFolderDataModule(str(folder), frames=8, size=16, batch_size=1, val_fraction=0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        val = list(dm.val_dataloader())
    assert [b["ids"] for b in val] == [["wide.mp4"]] and val[0]["video"].shape == (1, 8, 16, 16, 3)
