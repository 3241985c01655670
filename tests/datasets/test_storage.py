"""Episode storage: manifest contract, lossless round trip, workers, resume after a kill, CLI errors."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from worldmodel.cli import main
from worldmodel.datasets import generate_dataset, read_manifest, simulate
from worldmodel.datasets.storage import ANNOTATION_DIR, VIDEO_DIR, episode_seed
from worldmodel.video import read_video

MANIFEST_KEYS = {"id", "video", "annotation", "caption", "scenario", "split", "frames", "height", "width", "fps"}


def snapshot(root):
    """Decoded frames and annotation text of every episode in a dataset folder."""
    return {r["id"]: (read_video(root / r["video"]).tobytes(), (root / r["annotation"]).read_text())
            for r in read_manifest(root)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small dataset of every scenario, generated once."""
    root = tmp_path_factory.mktemp("data")
    generate_dataset(root, 10, seed=3, split="test_id", frames=9, size=32)
    return root


def test_manifest_and_annotations_follow_the_contract(dataset):
    records = read_manifest(dataset)
    assert len(records) == 10 and len({r["id"] for r in records}) == 10
    assert [r["scenario"] for r in records[:5]] == ["uniform", "parabola", "bounce", "collision", "multi"]
    for r in records:
        assert MANIFEST_KEYS <= set(r)
        assert (r["split"], r["frames"], r["height"], r["width"], r["fps"]) == ("test_id", 9, 32, 32, 10.0)
        annotation = json.loads((dataset / r["annotation"]).read_text())
        assert annotation["captions"][0] == r["caption"] and len(annotation["states"]) == 9


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_lossless_round_trip(dataset, backend):
    for i, r in enumerate(read_manifest(dataset)):
        episode = simulate(r["scenario"], "test_id", episode_seed(3, i), frames=9, size=32)
        np.testing.assert_array_equal(read_video(dataset / r["video"], backend=backend), episode.frames)
        assert json.loads((dataset / r["annotation"]).read_text()) == episode.annotation


def test_two_workers_write_the_same_dataset(dataset, tmp_path):
    generate_dataset(tmp_path, 10, seed=3, split="test_id", frames=9, size=32, workers=2)
    assert snapshot(tmp_path) == snapshot(dataset)


def test_rerun_with_other_settings_is_refused(dataset):
    with pytest.raises(ValueError, match="other settings .*seed 3 -> 4"):
        generate_dataset(dataset, 10, seed=4, split="test_id", frames=9, size=32)


@pytest.mark.slow
def test_resume_after_a_killed_run_completes_without_duplicates(tmp_path):
    out, episodes = tmp_path / "data", 40
    script = (f"from worldmodel.datasets import generate_dataset\n"
              f"generate_dataset({str(out)!r}, {episodes}, seed=1, split='train', size=32)")
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(list((out / ANNOTATION_DIR).glob("*.json"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((out / ANNOTATION_DIR).glob("*.json")))
    assert 8 <= done < episodes and not (out / "manifest.jsonl").exists()
    (out / VIDEO_DIR / ".train_000039_multi.abc.tmp.mkv").write_bytes(b"partial")  # as a kill mid-write leaves
    generate_dataset(out, episodes, seed=1, split="train", size=32)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert len(list((out / VIDEO_DIR).iterdir())) == episodes
    clean = tmp_path / "clean"
    generate_dataset(clean, episodes, seed=1, split="train", size=32)
    assert snapshot(out) == snapshot(clean)
    generate_dataset(out, episodes + 5, seed=1, split="train", size=32)  # growing a set keeps the first ones
    grown = snapshot(out)
    assert len(grown) == episodes + 5 and all(grown[k] == v for k, v in snapshot(clean).items())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--frames", "0"], "frames must be an integer"),
        (["--size", "3"], "size must be an integer"),
        (["--episodes", "0"], "episodes must be an integer >= 1"),
        (["--scenarios", "uniform,spin"], "scenarios must be a non-empty subset"),
        (["--workers", "0"], "workers must be an integer >= 1"),
    ],
)
def test_cli_rejects_bad_values_with_one_line(tmp_path, capsys, argv, message):
    base = {"--out": str(tmp_path / "d"), "--episodes": "2", "--split": "train"}
    base.update(dict(zip(argv[::2], argv[1::2], strict=True)))
    code = main(["data", "generate", *[x for kv in base.items() for x in kv]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "d").exists()


def test_cli_generate_and_preview(tmp_path, capsys):
    assert main(["data", "generate", "--out", str(tmp_path / "d"), "--episodes", "3", "--split", "val",
                 "--scenarios", "collision,bounce", "--frames", "5", "--size", "24"]) == 0
    records = read_manifest(tmp_path / "d")
    assert [r["scenario"] for r in records] == ["collision", "bounce", "collision"]
    assert main(["data", "preview", "--data", str(tmp_path / "d"), "-o", str(tmp_path / "p"), "--videos", "2"]) == 0
    written = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert written == sorted(["grid.png", "captions.txt", f"{records[0]['id']}.mp4", f"{records[1]['id']}.mp4"])
    assert read_video(tmp_path / "p" / f"{records[0]['id']}.mp4").shape == (5, 96, 96, 3)
    assert main(["data", "preview", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "q")]) == 2
    assert "no manifest" in capsys.readouterr().err
