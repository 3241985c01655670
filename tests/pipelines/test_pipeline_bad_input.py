"""Bad input to ``generate`` / ``rollout`` and pipeline folders: exit code 2, one sentence, no work."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from worldmodel.cli import main
from worldmodel.pipelines import CheckpointError, PhysicsRolloutPipeline, TextToVideoPipeline
from worldmodel.pipelines.limits import MAX_GUIDANCE
from worldmodel.video import write_video


@pytest.fixture
def no_model_load(monkeypatch):
    """The case must be refused before a model loads."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(TextToVideoPipeline, "from_checkpoint", classmethod(refuse))
    monkeypatch.setattr(PhysicsRolloutPipeline, "from_checkpoint", classmethod(refuse))


def _fails(argv, capsys, *sentence):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    said = [line for line in err.splitlines() if line.startswith("worldmodel ")]
    assert "Traceback" not in err and len(said) == 1, err
    for part in sentence:
        assert part in err, err
    return err


def _generate(checkpoint, out, *extra, prompt="a red ball falls"):
    return ["generate", *([prompt] if prompt is not None else []), "-o", str(out), "--checkpoint", str(checkpoint),
            *extra]


@pytest.mark.parametrize("command", ["generate", "rollout"])
def test_frames_beyond_the_longest_video_are_refused_at_once(no_model_load, checkpoint, tmp_path, capsys, command):
    # the toy model: 3 latent frames, tc 4 -> at most 1 + 4 * (16 * 3 - 1) = 189 frames
    argv = (_generate(checkpoint, tmp_path / "x.mp4", "--frames", "1000001") if command == "generate" else
            ["rollout", str(tmp_path / "in.mkv"), "--context-frames", "1", "-o", str(tmp_path / "x.mp4"),
             "--checkpoint", str(checkpoint), "--frames", "1000001"])
    _fails(argv, capsys, "--frames must be at most 189", "the longest video this model makes")


@pytest.mark.parametrize("prompt", ["", "   "])
def test_an_empty_prompt_is_refused_unless_unconditional(no_model_load, checkpoint, tmp_path, capsys, prompt):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", prompt=prompt), capsys, "the prompt is empty", "--unconditional")


def test_the_unconditional_flag_is_said_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--unconditional" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1000"])
def test_guidance_outside_its_range_is_refused(no_model_load, checkpoint, tmp_path, capsys, value):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", "--guidance", value), capsys,
           f"--guidance must be a number from 0 to {MAX_GUIDANCE:g}")


def test_temperature_inf_is_refused(no_model_load, checkpoint, tmp_path, capsys):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", "--temperature", "inf"), capsys,
           "--temperature must be a finite number >= 0")


@pytest.mark.parametrize("value", ["0", "1000000"])
def test_top_k_outside_the_codebook_is_refused(no_model_load, checkpoint, tmp_path, capsys, value):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", "--top-k", value), capsys,
           "--top-k must be from 1 to the 16 codes of this model")


def test_too_many_videos_are_refused_with_the_limit(no_model_load, checkpoint, tmp_path, capsys):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", "--num-videos", "100000"), capsys,
           "--num-videos must be from 1 to 16")


def test_an_unknown_device_is_one_sentence(no_model_load, checkpoint, tmp_path, capsys):
    _fails(_generate(checkpoint, tmp_path / "x.mp4", "--device", "banana"), capsys, "--device 'banana'",
           "not a torch device")


def test_output_into_a_read_only_folder_is_refused_before_work(no_model_load, checkpoint, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere chmod allows nothing; /proc refuses new files even to root
        target = Path("/proc/worldmodel-test/x.mp4")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "x.mp4"
    _fails(_generate(checkpoint, target), capsys, str(target), "is not writable")


def test_output_that_is_an_existing_directory_is_refused(no_model_load, checkpoint, tmp_path, capsys):
    folder = tmp_path / "dir.mp4"
    folder.mkdir()
    _fails(_generate(checkpoint, folder), capsys, f"-o {folder} is a directory")


def test_python_api_refuses_empty_prompts_and_bad_sampling(tiny_parts):
    tokenizer, world, _ = tiny_parts
    pipe = TextToVideoPipeline(tokenizer=tokenizer, world_model=world)
    for kwargs, sentence in (({"prompt": " "}, "prompt is empty"),
                             ({"prompt": "a ball", "guidance_scale": float("nan")}, "guidance_scale must be"),
                             ({"prompt": "a ball", "temperature": float("inf")}, "temperature must be a finite"),
                             ({"prompt": "a ball", "top_k": 17}, "top_k must be from 1 to the 16 codes"),
                             ({"prompt": "a ball", "num_frames": 1000001}, "num_frames must be at most 189")):
        with pytest.raises(ValueError, match=sentence):
            pipe(**kwargs)
    video = pipe(None, num_frames=1, num_videos_per_prompt=2).frames  # unconditional only when asked: None
    assert video.shape == (2, 1, 32, 32, 3)


def _broken_copy(checkpoint, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    return broken


def test_a_malformed_config_json_is_one_sentence_naming_the_file(checkpoint, tmp_path, capsys):
    broken = _broken_copy(checkpoint, tmp_path)
    (broken / "world_model" / "config.json").write_text("{not json")
    _fails(_generate(broken, tmp_path / "x.mp4"), capsys, str(broken / "world_model" / "config.json"),
           "is not valid JSON")


def test_a_config_that_disagrees_with_the_weights_is_one_sentence(checkpoint, tmp_path, capsys):
    broken = _broken_copy(checkpoint, tmp_path)
    config = json.loads((broken / "world_model" / "config.json").read_text())
    (broken / "world_model" / "config.json").write_text(json.dumps({**config, "d_model": 48}))
    with pytest.raises(CheckpointError, match="the weights disagree with config.json"):
        TextToVideoPipeline.from_checkpoint(broken)


def test_truncated_safetensors_are_one_sentence_naming_the_file(checkpoint, tmp_path, capsys):
    broken = _broken_copy(checkpoint, tmp_path)
    weights = next((broken / "tokenizer").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    _fails(_generate(broken, tmp_path / "x.mp4"), capsys, str(weights), "is truncated")


def test_rollout_of_a_truncated_video_warns_and_refuses_too_few_frames(checkpoint, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mkv", np.random.default_rng(0).integers(0, 255, (17, 32, 32, 3), np.uint8))
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"clip.mkv: only \d+ of the 17 frames"):
        _fails(["rollout", str(video), "--context-frames", "17", "-o", str(tmp_path / "x.mp4"),
                "--checkpoint", str(checkpoint)], capsys, "--context-frames must be between 1 and the")
