"""VideoTokenizer: shapes, causality, save/load, input validation (tiny random models, CPU)."""

import math

import numpy as np
import pytest
import torch

from worldmodel.tokenizers import VideoTokenizer

TINY = dict(channels=(8, 8, 8), blocks=1, patch_size=4, fsq_levels=(8, 5, 5, 5))


def _tokenizer(**overrides) -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(**{**TINY, **overrides}).eval()


def _video(frames: int, size: int = 32, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, frames, size, size, 3), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("frames", [1, 5, 17])
def test_shapes_for_one_five_and_seventeen_frames(frames):
    tok = _tokenizer()
    codes = tok.encode(_video(frames))
    t = 1 + (frames - 1) // 4
    assert codes.shape == (2, t, 4, 4) and codes.dtype == torch.long
    assert tok.latent_shape(frames, 32, 32) == (t, 4, 4) and tok.num_frames(t) == frames
    assert 0 <= int(codes.min()) and int(codes.max()) < tok.codebook_size == 1000
    video = tok.decode(codes)
    assert video.shape == (2, 3, frames, 32, 32) and video.abs().max() <= 1.0
    out = tok(_video(frames))
    assert out.reconstruction.shape == (2, 3, frames, 32, 32) and torch.equal(out.indices, codes)


@pytest.mark.parametrize(("tc", "sc", "channels", "patch"), [(1, 4, (8, 8), 2), (2, 8, (8, 8, 8), 4),
                                                             (4, 16, (8, 8, 8), 4)])
def test_compression_factors_by_config(tc, sc, channels, patch):
    tok = _tokenizer(temporal_compression=tc, spatial_compression=sc, channels=channels, patch_size=patch)
    frames = 1 + 2 * tc
    codes = tok.encode(_video(frames, size=32, batch=1))
    assert codes.shape == (1, 3, 32 // sc, 32 // sc)
    assert tok.decode(codes).shape == (1, 3, frames, 32, 32)


def test_float_and_uint8_inputs_agree():
    tok = _tokenizer()
    video = _video(5)
    as_float = video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    assert torch.equal(tok.encode(video), tok.encode(as_float))
    assert torch.equal(tok.encode(video.numpy()), tok.encode(video))


def test_encoder_is_causal():
    tok = _tokenizer()
    video = _video(17, seed=1)
    codes = tok.encode(video)
    assert torch.equal(tok.encode(video[:, :1]), codes[:, :1])  # an image is the first latent frame
    assert torch.equal(tok.encode(video[:, :9]), codes[:, :3])
    for k in (1, 4, 5, 9, 16):
        changed = video.clone()
        changed[:, k] = 255 - changed[:, k]
        new = tok.encode(changed)
        first_affected = 1 + (k - 1) // 4  # latent frame holding frame k
        assert torch.equal(new[:, :first_affected], codes[:, :first_affected]), k
        assert not torch.equal(new[:, first_affected], codes[:, first_affected]), k


def test_decoder_is_causal():
    tok = _tokenizer()
    codes = tok.encode(_video(17, seed=2))
    video = tok.decode(codes)
    for j in (1, 2, 4):
        changed = codes.clone()
        changed[:, j] = (changed[:, j] + 17) % tok.codebook_size
        new = tok.decode(changed)
        first_frame = 1 + 4 * (j - 1)  # first frame decoded from latent frame j
        assert torch.equal(new[:, :, :first_frame], video[:, :, :first_frame]), j
        assert not torch.equal(new[:, :, first_frame], video[:, :, first_frame]), j


@pytest.mark.parametrize("quantizer_type", ["fsq", "vq"])
def test_save_load_round_trip_is_identical(tmp_path, quantizer_type):
    tok = _tokenizer(quantizer_type=quantizer_type, vq_codebook_size=64, vq_dim=4)
    tok.train()
    tok(_video(5))  # a training step moves the VQ codebook: it must be saved too
    tok.eval()
    tok.save_pretrained(tmp_path)
    loaded = VideoTokenizer.from_pretrained(tmp_path).eval()
    video = _video(9, seed=3)
    codes = tok.encode(video)
    assert torch.equal(loaded.encode(video), codes)
    assert torch.equal(loaded.decode(codes), tok.decode(codes))
    assert loaded.config.quantizer_type == quantizer_type and loaded.codebook_size == tok.codebook_size


def test_training_forward_backward_and_vq_statistics():
    tok = _tokenizer(quantizer_type="vq", vq_codebook_size=32, vq_dim=4).train()
    out = tok(_video(5))
    loss = (out.reconstruction - tok.preprocess(_video(5))).abs().mean() + out.quantizer_loss
    loss.backward()
    assert all(p.grad is not None for p in tok.encoder.parameters())
    assert 0 < out.usage <= 1 and 1 <= out.perplexity <= 32 and out.quantizer_loss > 0


def test_clear_errors_for_bad_input():
    tok = _tokenizer()
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        tok.encode(torch.zeros(1, 5, 32, 32, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        tok.encode(torch.zeros(1, 1, 5, 32, 32))
    with pytest.raises(ValueError, match=r"6 frames, expected 1 \+ 4 \* k"):
        tok.encode(_video(6))
    with pytest.raises(ValueError, match="not divisible by the spatial compression 8"):
        tok.encode(_video(5, size=36))
    nan = torch.zeros(1, 3, 5, 32, 32)
    nan[0, 0, 2, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(nan)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 1000\)"):
        tok.decode(torch.full((1, 2, 4, 4), 1000))
    with pytest.raises(ValueError, match="integer tensor"):
        tok.decode(torch.zeros(1, 2, 4, 4))


def test_clear_errors_for_bad_config():
    with pytest.raises(ValueError, match="power of two"):
        VideoTokenizer(**{**TINY, "temporal_compression": 3})
    with pytest.raises(ValueError, match="add entries to `channels`"):
        VideoTokenizer(**{**TINY, "spatial_compression": 64})
    with pytest.raises(ValueError, match="quantizer_type"):
        VideoTokenizer(**{**TINY, "quantizer_type": "lfq"})


def test_numpy_uint8_single_clip_is_batched():
    tok = _tokenizer()
    clip = np.zeros((5, 32, 32, 3), np.uint8)
    assert tok.encode(clip).shape == (1, 2, 4, 4)


@pytest.mark.slow
def test_module_trains_checkpoints_resumes_and_exports(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader

    from worldmodel.training.export import export_checkpoint
    from worldmodel.training.tokenizer_module import TokenizerModule

    clips = [{"video": v} for v in _video(9, size=16, batch=4, seed=5)]
    loader = DataLoader(clips, batch_size=2,
                        collate_fn=lambda items: {"video": torch.stack([i["video"] for i in items])})

    class CountSteps(L.Callback):
        batches = 0

        def on_train_batch_end(self, *args) -> None:
            self.batches += 1

    def fit(steps: int, ckpt_path: str | None = None) -> tuple[TokenizerModule, int]:
        L.seed_everything(0)
        module = TokenizerModule(channels=[8, 8, 8], fsq_levels=[4, 4], train_frames=5, warmup_steps=2,
                                 export_dir=str(tmp_path / "export"))
        counter = CountSteps()
        trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1,
                            callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True), counter])
        trainer.fit(module, loader, loader, ckpt_path=ckpt_path)
        assert trainer.global_step == steps
        assert "val/codebook_usage" in trainer.callback_metrics and "val/ssim" in trainer.callback_metrics
        return module, counter.batches

    assert fit(2)[1] == 2
    module, batches = fit(4, ckpt_path="last")
    assert batches == 2  # resumed at step 2, not retrained from scratch
    exported = VideoTokenizer.from_pretrained(tmp_path / "export").eval()
    video = _video(5, size=16, batch=1)
    assert torch.equal(exported.encode(video), module.tokenizer.eval().encode(video))
    _, out = export_checkpoint(tmp_path / "ckpt" / "last.ckpt", tmp_path / "from_ckpt")
    assert torch.equal(VideoTokenizer.from_pretrained(out).encode(video), exported.encode(video))


def test_foreground_weights_mark_what_differs_from_the_frame_median() -> None:
    from worldmodel.training.tokenizer_module import foreground_weights

    x = torch.full((1, 3, 2, 16, 16), -0.8)  # (B, C, T, H, W) plain background
    x[:, :, 1, 6:9, 6:9] = 0.9  # a 3x3 "ball" in frame 1
    w = foreground_weights(x, weight=10.0, dilate=1)
    assert w.shape == (1, 1, 2, 16, 16)
    assert torch.all(w[:, :, 0] == 1.0)  # no foreground in frame 0
    assert torch.all(w[0, 0, 1, 5:10, 5:10] == 11.0)  # the ball grown by one pixel
    assert w[0, 0, 1].sum() == 16 * 16 + 10.0 * 25


def test_training_crops_are_random_windows_of_the_clip() -> None:
    from worldmodel.training.tokenizer_module import TokenizerModule

    module = TokenizerModule(channels=[8, 8, 8], fsq_levels=[4, 4], train_frames=5, train_crop=8)
    x = torch.arange(2 * 3 * 9 * 16 * 16, dtype=torch.float32).view(2, 3, 9, 16, 16)
    torch.manual_seed(0)
    crop = module._crop(x)
    assert crop.shape == (2, 3, 5, 8, 8)
    for b in range(2):  # each clip's window is a contiguous block of that clip
        start = int((crop[b, 0, 0, 0, 0] % (16 * 16 * 9)) // 256)
        top, left = divmod(int(crop[b, 0, 0, 0, 0] % 256), 16)
        assert torch.equal(crop[b], x[b, :, start:start + 5, top:top + 8, left:left + 8])
    with pytest.raises(ValueError, match="not divisible"):
        TokenizerModule(channels=[8, 8, 8], fsq_levels=[4, 4], train_crop=12)


def test_video_psnr_is_per_video_and_matches_its_definition() -> None:
    from worldmodel.training.tokenizer_module import video_psnr, video_psnr_ssim

    target = torch.zeros(2, 3, 2, 16, 16)  # [-1, 1] range: 0 is mid-grey
    prediction = target.clone()
    prediction[0] += 0.2  # error 0.1 in [0, 1] units: MSE 0.01, PSNR 20 dB
    prediction[1] += 2.0  # clamped to 1: error 0.5, MSE 0.25, PSNR ~6.02 dB
    psnr = video_psnr(prediction, target)
    assert torch.allclose(psnr, torch.tensor([20.0, 10 * math.log10(4.0)]), atol=1e-4)
    assert torch.equal(video_psnr_ssim(prediction, target)[0], psnr)
