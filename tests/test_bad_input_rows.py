"""Bad input outside the generation CLI: one sentence naming the input, exit code 2, nothing written."""

import json
import os
import pickle
import signal

import numpy as np
import pytest
import torch

from worldmodel.cli import main
from worldmodel.datasets import simulate
from worldmodel.evaluation.tracking import Tracks
from worldmodel.video import write_video


def _fails(argv, capsys, *sentence, code=2):
    result = main(argv)
    err = capsys.readouterr().err
    assert result == code, err
    said = [line for line in err.splitlines() if line.startswith("worldmodel ")]
    assert "Traceback" not in err and len(said) == 1, err
    for part in sentence:
        assert part in err, err


def test_evaluate_physics_refuses_a_negative_example_count(tmp_path, capsys):
    _fails(["evaluate", "physics", "--pred", str(tmp_path), "--reference", str(tmp_path), "-o", str(tmp_path / "r"),
            "--examples", "-1"], capsys, "--examples must be a count of 0 or more")


def test_a_prediction_shorter_than_the_reference_is_refused_not_scored():
    from worldmodel.evaluation.physics import episode_metrics

    episode = simulate("parabola", "val", 0, frames=17, size=32)
    with pytest.raises(ValueError, match="the predicted video has 7 frames, fewer than the reference's 17"):
        episode_metrics(episode.frames[:7], episode.annotation, episode.frames, context_frames=5)


def test_fvd_folders_ignore_hidden_and_temporary_files(tmp_path):
    from worldmodel.evaluation.cli import _video_batches

    clip = np.zeros((4, 16, 16, 3), np.uint8)
    write_video(tmp_path / "a.mkv", clip)
    write_video(tmp_path / ".a.tmp1234.mkv", clip[:2])  # the leftover of an interrupted atomic write
    (tmp_path / ".hidden.mp4").write_bytes(b"junk")
    batches = list(_video_batches(tmp_path, None, 8))
    assert [b.shape for b in batches] == [(1, 4, 16, 16, 3)]


def test_physics_checks_refuse_fps_zero():
    from worldmodel.evaluation import physics_checks

    tracks = Tracks(*(np.zeros((4, 1, 2)), np.ones((4, 1)), np.ones((4, 1)), np.ones((4, 1), bool),
                      np.ones((4, 1), bool), np.zeros((4, 1, 2, 2), bool)))
    with pytest.raises(ValueError, match="fps must be a positive finite number, got 0"):
        physics_checks(tracks, fps=0, ppu=6.4)


def test_text_adherence_is_callable_as_the_readme_shows():
    import worldmodel.evaluation.text_adherence  # noqa: F401  (the sub-module imported first: the hard case)
    from worldmodel.evaluation import text_adherence

    episode = simulate("uniform", "val", 0, frames=9, size=64)
    assert set(text_adherence(episode.frames, episode.captions[0])) == {"score", "checks", "found"}


def test_simulate_refuses_a_fractional_seed():
    with pytest.raises(TypeError, match="seed must be an integer, got float 1.5"):
        simulate("uniform", "val", 1.5)


@pytest.mark.parametrize("fps", ["0", "-1", "nan", "inf"])
def test_data_generate_validates_fps_before_writing(tmp_path, capsys, fps):
    out = tmp_path / "d"
    _fails(["data", "generate", "--out", str(out), "--episodes", "1", "--split", "val", "--fps", fps], capsys,
           "fps must be a number in (0, 1000]")
    assert not out.exists()
    assert main(["data", "generate", "--out", str(out), "--episodes", "1", "--split", "val", "--frames", "3",
                 "--size", "16"]) == 0


def test_write_video_of_zero_frames_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="frames are empty"):
        write_video(tmp_path / "x.mkv", np.zeros((0, 8, 8, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_video_in_a_dataset_warns_with_the_frames_found(tmp_path):
    from worldmodel.video import read_video

    path = write_video(tmp_path / "x.mkv", np.random.default_rng(0).integers(0, 255, (17, 32, 32, 3), np.uint8))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"x.mkv: only \d+ of the 17 frames its header lists"):
        assert len(read_video(path)) < 17


def test_tokenizing_with_a_world_model_folder_is_refused(tmp_path, capsys):
    from worldmodel.model import WorldModel

    world = WorldModel(codebook_size=16, latent_frames=2, latent_height=2, latent_width=2, max_text_len=16,
                       d_model=16, n_layers=1, n_heads=2, kv_lora_rank=8, qk_nope_head_dim=4, qk_rope_head_dim=6,
                       v_head_dim=4, n_dense_layers=1, dense_hidden=16, text_d_model=8, text_layers=1, text_heads=2)
    folder = tmp_path / "world_model"
    world.save_pretrained(folder)
    (tmp_path / "videos").mkdir()
    _fails(["tokenize", "--tokenizer", str(folder), "--videos", str(tmp_path / "videos"), "--out",
            str(tmp_path / "cache")], capsys, f"{folder} holds a WorldModel, expected a VideoTokenizer")


def test_a_missing_local_tokenizer_folder_never_reaches_the_network(tmp_path, capsys, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    (tmp_path / "videos").mkdir()
    _fails(["tokenize", "--tokenizer", "models/mytok", "--videos", str(tmp_path / "videos"), "--out",
            str(tmp_path / "cache")], capsys, "models/mytok: no such folder")


def test_an_out_that_is_an_existing_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _fails(["export", str(tmp_path / "a.ckpt"), str(tmp_path / "file")], capsys,
           f"OUT {tmp_path / 'file'} is an existing file")


class _Exploit:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_malicious_checkpoint_is_refused_in_one_sentence(tmp_path, capsys):
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model_config": {}}, "x": _Exploit()}, ckpt,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    _fails(["export", str(ckpt), str(tmp_path / "out")], capsys, f"{ckpt}: not a weights-only checkpoint", "refused")
    assert "this ran" not in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_ctrl_c_ends_in_one_line(monkeypatch, capsys):
    import worldmodel.datasets.storage as storage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage, "generate_dataset", interrupted)
    assert main(["data", "generate", "--out", "x", "--episodes", "1", "--split", "val"]) == 128 + signal.SIGINT
    err = capsys.readouterr().err.strip()
    assert err.startswith("worldmodel data: interrupted;") and len(err.splitlines()) == 1


def test_train_help_lists_presets_and_verbs_first(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 40
    assert out.index("presets") < out.index("YAML route") < out.index("--lightning-help")
    assert "worldmodel tokenize" in out and "worldmodel export" in out and "--lightning-help" in out


def test_a_bad_captions_line_names_the_file_and_line(tmp_path):
    """A captions.jsonl with a bad line is refused naming the file and the line."""
    from worldmodel.datasets.folder import read_captions

    path = tmp_path / "captions.jsonl"
    path.write_text(json.dumps({"video": "a.mp4", "caption": "x"}) + "\nnot json\n")
    with pytest.raises(ValueError, match="captions.jsonl:2: expected a JSON object"):
        read_captions(path)


def test_a_malicious_ckpt_path_is_refused_in_one_sentence_with_nothing_run(tmp_path, capsys):
    marker = tmp_path / "this ran"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _MarkerExploit(str(marker))}, ckpt, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    config = tmp_path / "boring.yaml"
    config.write_text(json.dumps({  # JSON is YAML: a model and data that build in milliseconds
        "model": {"class_path": "lightning.pytorch.demos.boring_classes.BoringModel"},
        "data": {"class_path": "lightning.pytorch.demos.boring_classes.BoringDataModule"},
        "trainer": {"default_root_dir": str(tmp_path / "run"), "accelerator": "cpu", "max_steps": 1,
                    "logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
                    "enable_model_summary": False}}))
    _fails(["train", "--config", str(config), "--ckpt_path", str(ckpt)], capsys,
           f"--ckpt_path {ckpt}: not a weights-only checkpoint", "refused without running it")
    assert not marker.exists()


class _MarkerExploit:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _tiny_world_model():
    from worldmodel.model import WorldModel

    return WorldModel(codebook_size=16, latent_frames=2, latent_height=2, latent_width=2, max_text_len=16,
                      d_model=16, n_layers=1, n_heads=2, kv_lora_rank=8, qk_nope_head_dim=4, qk_rope_head_dim=6,
                      v_head_dim=4, n_dense_layers=1, dense_hidden=16, text_d_model=8, text_layers=1, text_heads=2)


def _tiny_tokenizer():
    from worldmodel.tokenizers import VideoTokenizer

    return VideoTokenizer(channels=(8, 8, 8), patch_size=4, spatial_compression=8, temporal_compression=4)


def test_from_pretrained_refuses_a_folder_of_the_other_model(tmp_path):
    from worldmodel.model import WorldModel
    from worldmodel.pretrained import PretrainedFolderError
    from worldmodel.tokenizers import VideoTokenizer

    _tiny_world_model().save_pretrained(tmp_path / "world_model")
    _tiny_tokenizer().save_pretrained(tmp_path / "tokenizer")
    with pytest.raises(PretrainedFolderError, match=f"^{tmp_path / 'tokenizer'} holds a VideoTokenizer, expected a "
                                                    "WorldModel$"):
        WorldModel.from_pretrained(tmp_path / "tokenizer")
    with pytest.raises(PretrainedFolderError, match="world_model holds a WorldModel, expected a VideoTokenizer$"):
        VideoTokenizer.from_pretrained(tmp_path, subfolder="world_model")
    with pytest.raises(FileNotFoundError, match="models/mine: no such folder"):
        WorldModel.from_pretrained("models/mine")  # a local name, never a model-hub request


def test_from_pretrained_loads_its_own_folder_quietly(tmp_path, caplog):
    from worldmodel.model import WorldModel
    from worldmodel.tokenizers import VideoTokenizer

    world, tokenizer = _tiny_world_model(), _tiny_tokenizer()
    world.save_pretrained(tmp_path / "world_model")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    with caplog.at_level("WARNING"):
        loaded = [WorldModel.from_pretrained(tmp_path / "world_model"),
                  VideoTokenizer.from_pretrained(tmp_path, subfolder="tokenizer")]
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    for saved, again in zip((world, tokenizer), loaded, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), again.state_dict().values(),
                                                    strict=True))


@pytest.mark.parametrize("module", ["worldmodel", "tokenizer"])
def test_a_training_module_refuses_a_pretrained_folder_of_the_other_model(tmp_path, module):
    from worldmodel.pretrained import PretrainedFolderError
    from worldmodel.training.tokenizer_module import TokenizerModule
    from worldmodel.training.worldmodel_module import WorldModelModule

    models = {"world_model": _tiny_world_model(), "tokenizer": _tiny_tokenizer()}
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
    cls, mine, other, wanted = ((WorldModelModule, "world_model", "tokenizer", "WorldModel") if module == "worldmodel"
                                else (TokenizerModule, "tokenizer", "world_model", "VideoTokenizer"))
    with pytest.raises(PretrainedFolderError, match=f"{other} holds a .*, expected a {wanted}$"):
        cls(pretrained=str(tmp_path / other))
    loaded = cls(pretrained=str(tmp_path / mine))
    inner = loaded.model if module == "worldmodel" else loaded.tokenizer
    assert all(torch.equal(a, b) for a, b in zip(models[mine].state_dict().values(), inner.state_dict().values(),
                                                strict=True))


def test_settings_that_disagree_with_a_pretrained_folder_are_refused_not_dropped(tmp_path):
    """A preset's n_layers over a deeper folder would silently drop blocks; settings that only add a fresh tensor
    (code positions) still load."""
    from worldmodel.model import WorldModel
    from worldmodel.model.growth import grow_depth
    from worldmodel.pretrained import PretrainedFolderError
    from worldmodel.training.worldmodel_module import WorldModelModule

    grow_depth(_tiny_world_model()).save_pretrained(tmp_path / "deep")
    with pytest.raises(PretrainedFolderError, match=r"n_layers=1 \(the folder has 2\).* leave 15 saved tensors unused"):
        WorldModelModule(pretrained=str(tmp_path / "deep"), model_config={"n_layers": 1, "n_dense_layers": 1})
    with pytest.raises(PretrainedFolderError, match=r"d_model=32 \(the folder has 16\).* of another shape"):
        WorldModel.from_pretrained(tmp_path / "deep", d_model=32)
    placed = WorldModel.from_pretrained(tmp_path / "deep", code_positions=True, n_layers=2)
    assert placed.config.n_layers == 2 and placed.row_embed.abs().sum() == 0
