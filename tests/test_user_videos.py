"""A "user folder" that is not simulator output: a tiny preset run over it finishes, names the skipped files, and the
exported pipeline generates and rolls out; ``worldmodel export`` of the run's last checkpoint gives the same model."""

import json

import numpy as np
import pytest
import torch

from worldmodel.cli import main
from worldmodel.model import WorldModel
from worldmodel.video import read_video, write_video


def make_user_folder(root):
    """Moving shapes and noise textures of other sizes, lengths and frame rates; a corrupt, an empty and a text file."""
    rng = np.random.default_rng(0)
    for name, (t, h, w, fps) in {"shapes/square.mp4": (48, 72, 96, 25), "noise.mkv": (30, 80, 60, 15),
                                 "nested/deeper/bar.mov": (40, 50, 50, 20)}.items():
        frames = np.zeros((t, h, w, 3), np.uint8)
        frames[:] = rng.integers(0, 80, (1, h, w, 3), dtype=np.uint8)  # a noise texture background
        for i in range(t):
            x = 4 + i * (w - 20) // t
            frames[i, h // 3:h // 3 + 12, x:x + 12] = (230, 40, 40)  # a moving square
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, frames, fps=fps, lossless=name.endswith(".mkv"))
    (root / "shapes" / "square.txt").write_text("a red square moves right")
    good = (root / "noise.mkv").read_bytes()
    (root / "corrupt.mp4").write_bytes(good[:200] + bytes(rng.integers(0, 255, 4000, dtype=np.uint8)))
    (root / "empty.mov").write_bytes(b"")
    (root / "notes.mp4").write_text("this is a text file, not a video")


@pytest.mark.slow
def test_a_tiny_run_on_a_user_folder_exports_a_pipeline_that_generates_and_rolls_out(tmp_path, capsys):
    videos = tmp_path / "my videos"
    make_user_folder(videos)
    out = tmp_path / "models" / "mine"
    code = main(["train", "--preset", "tiny", "--videos", str(videos), "--out", str(out), "--max-minutes", "2",
                 "--workers", "0", "--trainer.max_steps=2", "--trainer.enable_progress_bar=false",
                 "--trainer.limit_val_batches=0", "--trainer.enable_model_summary=false"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for skipped in ("corrupt.mp4", "empty.mov", "notes.mp4"):
        assert skipped in printed.split("skipped 3 files:")[1]
    record = json.loads((out / "training.json").read_text())
    assert sorted(s["file"] for s in record["skipped"]) == ["corrupt.mp4", "empty.mov", "notes.mp4"]
    assert record["clips"] == 3 and set(record["seconds"]) >= {"clips", "tokenizer", "tokens", "worldmodel"}

    assert main(["generate", "a red square moves right", "--checkpoint", str(out), "-o", str(tmp_path / "g.mp4"),
                 "--frames", "5"]) == 0
    assert read_video(tmp_path / "g.mp4").shape == (5, 64, 64, 3)
    clip = next((out.with_name("mine.work") / "clips" / "videos").glob("*.mkv"))
    assert main(["rollout", str(clip), "--context-frames", "5", "--frames", "9", "--checkpoint", str(out),
                 "-o", str(tmp_path / "r.mkv")]) == 0
    assert read_video(tmp_path / "r.mkv").shape == (9, 64, 64, 3)

    ckpt = out.with_name("mine.work") / "worldmodel" / "checkpoints" / "last.ckpt"  # a real Lightning checkpoint
    assert main(["export", str(ckpt), str(tmp_path / "exported")]) == 0
    exported = WorldModel.from_pretrained(tmp_path / "exported").state_dict()
    shipped = WorldModel.from_pretrained(out / "world_model").state_dict()
    assert exported.keys() == shipped.keys() and all(torch.equal(exported[k], shipped[k]) for k in shipped)


def test_tokenize_verb_encodes_a_user_folder_with_captions_and_lists_skipped_files(tmp_path, capsys):
    from worldmodel.datasets.tokens import TokenDataset
    from worldmodel.tokenizers import VideoTokenizer
    from worldmodel.tokenizers.cache import read_cache_meta

    make_user_folder(tmp_path / "videos")
    torch.manual_seed(0)
    tokenizer_dir = tmp_path / "tok"
    VideoTokenizer(channels=(8, 8, 8), fsq_levels=(4, 4)).save_pretrained(tokenizer_dir)
    captions = tmp_path / "captions.jsonl"
    captions.write_text(json.dumps({"video": "noise.mkv", "caption": "grey noise, nothing moves"}) + "\n")
    code = main(["tokenize", "--tokenizer", str(tokenizer_dir), "--videos", str(tmp_path / "videos"),
                 "--out", str(tmp_path / "cache"), "--frames", "9", "--size", "32", "--captions", str(captions)])
    assert code == 0 and "wrote the token cache" in capsys.readouterr().out
    meta = read_cache_meta(tmp_path / "cache")
    skipped = {str(s["file"]).rsplit("/", 1)[-1] for s in meta["skipped_files"]}
    assert {"corrupt.mp4", "empty.mov", "notes.mp4"} <= skipped
    items = [TokenDataset(tmp_path / "cache")[i] for i in range(len(TokenDataset(tmp_path / "cache")))]
    assert items and all(item["codes"].shape == (3, 4, 4) for item in items)  # 9 frames of 32x32 at 4x8x8
    by_caption = {item["caption"] for item in items}
    assert "grey noise, nothing moves" in by_caption and "a red square moves right" in by_caption
