"""PhysicsRolloutPipeline: keeps the context, reproducible, cached == uncached, speculative, errors, save/load."""

import numpy as np
import pytest
import torch

from worldmodel.pipelines import CheckpointError, PhysicsRolloutPipeline, TextToVideoPipeline
from worldmodel.video import VideoReadError, to_uint8


@pytest.fixture(scope="module")
def pipe(tiny_parts):
    tokenizer, world, draft = tiny_parts
    pipeline = PhysicsRolloutPipeline(tokenizer=tokenizer, world_model=world, draft_model=draft)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def context():
    return np.random.default_rng(0).integers(0, 256, (2, 5, 32, 32, 3), dtype=np.uint8)


def _run(pipe, context, seed=0, **kwargs):
    kwargs.setdefault("num_frames", 9)
    kwargs.setdefault("temperature", 1.0)  # sampled, so that seeds matter (the default is greedy)
    return pipe(context, generator=torch.Generator().manual_seed(seed), **kwargs).frames


def test_rollout_keeps_the_context_as_the_tokenizer_reconstructs_it(pipe, context):
    frames = _run(pipe, context)
    assert frames.shape == (2, 9, 32, 32, 3) and frames.dtype == np.uint8
    reconstruction = to_uint8(pipe.tokenizer.decode(pipe.tokenizer.encode(context))).numpy()  # (2, 5, ...)
    assert np.abs(frames[:, :5].astype(int) - reconstruction.astype(int)).max() <= 1


def test_same_seed_same_video_and_cache_changes_nothing(pipe, context):
    first = _run(pipe, context, seed=3, output_type="latent")
    assert torch.equal(first, _run(pipe, context, seed=3, output_type="latent"))
    assert not torch.equal(first, _run(pipe, context, seed=4, output_type="latent"))
    assert torch.equal(first, _run(pipe, context, seed=3, output_type="latent", use_cache=False))


def test_greedy_speculative_equals_greedy_plain(pipe, context):
    plain = _run(pipe, context, temperature=0, output_type="latent")
    fast = _run(pipe, context, temperature=0, output_type="latent", speculative=True, num_draft_tokens=3)
    assert torch.equal(plain, fast)


def test_long_rollout_slides_a_window(pipe, context):
    frames = _run(pipe, context[:1], num_frames=17, window_stride=1)  # 5 latent frames > the model's 3
    assert frames.shape == (1, 17, 32, 32, 3)


def test_reencoded_window_starts_on_a_single_frame_latent_of_the_decoded_clip(pipe, context):
    codes = _run(pipe, context, num_frames=9, output_type="latent")  # (2, 3, h, w): one full window
    kept = pipe.reencode_window(codes, 2)  # the window's next start: 2 latent frames = the last 5 frames
    video = to_uint8(pipe.tokenizer.decode(codes))  # (2, 9, 32, 32, 3)
    assert torch.equal(kept, pipe.tokenizer.encode(video[:, -5:]))
    assert torch.equal(kept[1:], pipe.reencode_window(codes[1:], 2))  # row by row: any batch, same codes
    assert not torch.equal(kept, codes[:, -2:])  # what the "shift" rule would keep
    # the rules agree while the window is not full
    assert torch.equal(codes, _run(pipe, context, num_frames=9, output_type="latent", window_rule="shift"))
    long = {rule: _run(pipe, context, num_frames=17, output_type="latent", window_rule=rule)
            for rule in ("reencode", "shift")}
    assert long["reencode"].shape == long["shift"].shape == (2, 5, *codes.shape[2:])
    assert torch.equal(long["reencode"][:, :3], long["shift"][:, :3])
    with pytest.raises(ValueError, match="window_rule must be one of reencode, shift"):
        _run(pipe, context, num_frames=17, window_rule="slide")


def test_output_types(pipe, context):
    pt = _run(pipe, context[:1], output_type="pt")
    assert pt.dtype == torch.uint8 and pt.shape == (1, 9, 32, 32, 3)
    pil = _run(pipe, context[:1], output_type="pil")
    assert len(pil) == 1 and len(pil[0]) == 9 and pil[0][0].size == (32, 32)
    with pytest.raises(ValueError, match="output_type"):
        _run(pipe, context, output_type="gif")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"video": np.zeros((4, 32, 32, 3), np.uint8)}, "context frames must be 1 \\+ 4 \\* k"),
    ({"num_frames": 8}, "num_frames must be 1 \\+ 4 \\* k"),
    ({"num_frames": 5}, "must be more than the 5 context frames"),
    ({"video": np.zeros((5, 40, 32, 3), np.uint8)}, "40x32 pixels"),
    ({"video": np.zeros((5, 32, 32, 3), np.float32)}, "uint8"),
    ({"guidance_scale": 2.0}, "needs a prompt"),
    ({"temperature": -1.0}, "temperature"),
])
def test_clear_errors(pipe, context, kwargs, match):
    kwargs = {"video": context, "num_frames": 9, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)


def test_unreadable_video_file(pipe, tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(VideoReadError, match="broken.mp4"):
        pipe(str(bad), num_frames=9)
    with pytest.raises(VideoReadError, match="missing.mkv"):
        pipe(tmp_path / "missing.mkv", num_frames=9)


def test_video_file_as_context(pipe, context, tmp_path):
    from worldmodel.video import write_video

    path = write_video(tmp_path / "clip.mkv", context[0])
    assert np.array_equal(_run(pipe, str(path)), _run(pipe, context[:1]))


def test_save_and_load_one_folder_for_both_pipelines(pipe, context, tmp_path):
    pipe.save_pretrained(tmp_path / "ckpt")
    loaded = PhysicsRolloutPipeline.from_checkpoint(tmp_path / "ckpt")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.draft_model is not None
    assert np.array_equal(_run(loaded, context), _run(pipe, context))
    t2v = TextToVideoPipeline.from_checkpoint(tmp_path / "ckpt")
    assert isinstance(t2v, TextToVideoPipeline)
    for name, value in pipe.world_model.state_dict().items():
        torch.testing.assert_close(t2v.world_model.state_dict()[name], value)


def test_save_and_load_without_a_draft(pipe, context, tmp_path):
    bare = PhysicsRolloutPipeline(tokenizer=pipe.tokenizer, world_model=pipe.world_model)
    bare.save_pretrained(tmp_path / "bare")
    loaded = PhysicsRolloutPipeline.from_checkpoint(tmp_path / "bare")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.draft_model is None
    assert np.array_equal(_run(loaded, context), _run(pipe, context))
    with pytest.raises(ValueError, match="needs a draft_model"):
        _run(loaded, context, speculative=True)


def test_missing_or_incomplete_checkpoint(pipe, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        PhysicsRolloutPipeline.from_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="missing model_index.json"):
        PhysicsRolloutPipeline.from_checkpoint(tmp_path / "empty")
    pipe.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "world_model" / "diffusion_pytorch_model.safetensors").unlink()
    (tmp_path / "ckpt" / "draft_model" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="world_model/diffusion_pytorch_model.safetensors.*draft_model/config"):
        TextToVideoPipeline.from_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model_index.json").write_text(
        '{"_class_name": "TextToVideoPipeline", "tokenizer": ["os", "system"], "world_model": [null, null]}')
    with pytest.raises(CheckpointError, match="must name a worldmodel class for 'tokenizer'"):
        TextToVideoPipeline.from_checkpoint(tmp_path / "ckpt")
