"""``worldmodel rollout`` end to end on a toy checkpoint: files, side-by-side comparison, clear errors."""

import json
import re

import pytest

from worldmodel.cli import main
from worldmodel.datasets import simulate
from worldmodel.video import read_video, write_video


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    """A dataset-layout episode: videos/<id>.mkv beside annotations/<id>.json."""
    root = tmp_path_factory.mktemp("data")
    ep = simulate("parabola", "test_id", 1, frames=9, size=32)
    video = write_video(root / "videos" / "ep.mkv", ep.frames)
    (root / "annotations").mkdir()
    (root / "annotations" / "ep.json").write_text(json.dumps(ep.annotation))
    return video


def test_rollout_writes_an_mp4(checkpoint, episode, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code = main(["rollout", str(episode), "--context-frames", "5", "-o", str(out), "--frames", "9",
                 "--checkpoint", str(checkpoint), "--seed", "1", "--speculative", "frame"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    assert read_video(out).shape == (9, 32, 32, 3)


def test_rollout_compare_sim_writes_prediction_beside_a_longer_simulation(checkpoint, episode, tmp_path):
    out = tmp_path / "cmp.gif"
    code = main(["rollout", str(episode), "--context-frames", "1", "-o", str(out), "--frames", "13",
                 "--checkpoint", str(checkpoint), "--compare-sim"])
    assert code == 0
    frames = read_video(out)
    assert frames.shape == (13, 32, 66, 3)  # 13 > the 9 frames of the file: the simulator ran longer
    truth = simulate("parabola", "test_id", 1, frames=13, size=32).frames
    assert abs(frames[12, :, 34:].astype(int) - truth[12].astype(int)).mean() < 8  # GIF palette error only


@pytest.mark.parametrize(("args", "match"), [
    (["--checkpoint", "NOWHERE"], "NOWHERE does not exist"),
    (["-o", "out.avi"], "must end in one of .mp4, .gif, .mkv"),
    (["--context-frames", "50"], "--context-frames must be between 1 and the 9 frames"),
    (["--context-frames", "4"], "context frames must be 1 \\+ 4 \\* k"),
    (["--frames", "10"], "--frames must be 1 \\+ 4 \\* k"),
])
def test_rollout_errors_are_one_clear_line(checkpoint, episode, tmp_path, capsys, args, match):
    base = {"--context-frames": "5", "-o": str(tmp_path / "x.mp4"), "--checkpoint": str(checkpoint)}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value if flag != "-o" else str(tmp_path / value)
    argv = ["rollout", str(episode)] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldmodel rollout: error:") and len(err.strip().splitlines()) == 1
    assert re.search(match, err)


def test_rollout_of_an_unreadable_file_or_without_annotation(checkpoint, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    assert main(["rollout", str(bad), "--context-frames", "1", "-o", str(tmp_path / "o.mp4"),
                 "--checkpoint", str(checkpoint)]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    clip = write_video(tmp_path / "plain.mkv", simulate("uniform", "val", 0, frames=5, size=32).frames)
    assert main(["rollout", str(clip), "--context-frames", "1", "-o", str(tmp_path / "o.mp4"),
                 "--checkpoint", str(checkpoint), "--compare-sim"]) == 2
    assert "--compare-sim needs the annotation" in capsys.readouterr().err


def test_importing_the_cli_stays_light():
    """``worldmodel --help`` imports every area's cli module: this one must not pull in torch or diffusers."""
    import subprocess
    import sys

    code = "import sys, worldmodel.pipelines.cli; print(sorted({'torch', 'diffusers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
