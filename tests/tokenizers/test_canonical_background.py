"""VideoTokenizer(canonical_background=True): background voxels get the still-background code (tiny model, CPU)."""

import pytest
import torch

from worldmodel.tokenizers import VideoTokenizer

TINY = dict(channels=(8, 8, 8), blocks=1, patch_size=4, fsq_levels=(8, 5, 5, 5))
BACKGROUND = (40, 40, 60)


def _tokenizer(**overrides) -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(**{**TINY, **overrides}).eval()


def _square_clip(x0: int, y0: int = 10, frames: int = 9, size: int = 32, step: int = 1) -> torch.Tensor:
    """uint8 (1, T, H, W, 3): a 4x4 orange square moving right by ``step`` px a frame over a plain background."""
    video = torch.tensor(BACKGROUND, dtype=torch.uint8).expand(frames, size, size, 3).clone()
    for f in range(frames):
        x = x0 + step * f
        video[f, y0:y0 + 4, x:x + 4] = torch.tensor((250, 140, 20), dtype=torch.uint8)
    return video[None]


def _still(frames: int = 9, size: int = 32) -> torch.Tensor:
    return torch.tensor(BACKGROUND, dtype=torch.uint8).expand(1, frames, size, size, 3).contiguous()


def test_a_still_plain_clip_keeps_its_codes() -> None:
    plain, canonical = _tokenizer(), _tokenizer(canonical_background=True)
    assert torch.equal(plain.encode(_still()), canonical.encode(_still()))


def test_untouched_background_gets_the_still_code_and_the_object_keeps_its_own() -> None:
    plain, canonical = _tokenizer(), _tokenizer(canonical_background=True)
    clip = _square_clip(2)  # rows 10-13 (latent row 1), columns 2-13 over 9 frames (latent columns 0-1)
    codes, raw, still = canonical.encode(clip), plain.encode(clip), plain.encode(_still())
    touched = torch.zeros_like(codes, dtype=torch.bool)
    touched[:, 0, 1, 0:1] = True  # frame 0: columns 2-5
    touched[:, 1, 1, 0:2] = True  # frames 1-4: columns 3-9
    touched[:, 2, 1, 0:2] = True  # frames 5-8: columns 7-13
    assert torch.equal(codes[touched], raw[touched])
    assert torch.equal(codes[~touched], still[~touched])
    assert not torch.equal(raw[~touched], still[~touched])  # the plain encoder spreads the square around


def test_far_codes_do_not_depend_on_where_the_object_is() -> None:
    canonical = _tokenizer(canonical_background=True, background_margin=2)
    a, b = canonical.encode(_square_clip(2)), canonical.encode(_square_clip(2, y0=18))
    assert torch.equal(a[:, :, 3], b[:, :, 3])  # latent row 3 (pixels 24-31) is > 2 px from both squares
    assert not torch.equal(a[:, :, 1], b[:, :, 1])


def test_the_margin_keeps_codes_next_to_the_object() -> None:
    plain, canonical = _tokenizer(), _tokenizer(canonical_background=True, background_margin=3)
    clip = _square_clip(2)
    codes, raw = canonical.encode(clip), plain.encode(clip)
    assert torch.equal(codes[:, :, 2, 0], raw[:, :, 2, 0])  # latent row 2 starts 2 px below the square


def test_clips_without_a_plain_background_are_left_alone() -> None:
    noise = torch.randint(0, 256, (2, 9, 32, 32, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert torch.equal(_tokenizer().encode(noise), _tokenizer(canonical_background=True).encode(noise))


def test_each_clip_of_a_batch_uses_its_own_background() -> None:
    canonical = _tokenizer(canonical_background=True)
    other = _square_clip(2).clone()
    other[(other == torch.tensor(BACKGROUND, dtype=torch.uint8)).all(-1)] = torch.tensor((0, 90, 0), dtype=torch.uint8)
    batch = torch.cat([_square_clip(2), other])
    assert torch.equal(canonical.encode(batch), torch.cat([canonical.encode(_square_clip(2)), canonical.encode(other)]))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="background_tolerance"):
        _tokenizer(background_tolerance=-1)
    with pytest.raises(ValueError, match="background_margin"):
        _tokenizer(background_margin=-2)


def test_the_setting_travels_through_training_module_and_save_load(tmp_path) -> None:
    from worldmodel.training.tokenizer_module import TokenizerModule

    module = TokenizerModule(channels=[8, 8, 8], fsq_levels=[8, 5, 5, 5], canonical_background=True,
                             background_margin=2)
    module.tokenizer.save_pretrained(tmp_path / "tok")
    loaded = VideoTokenizer.from_pretrained(tmp_path / "tok").eval()
    assert loaded.config.canonical_background and loaded.config.background_margin == 2
    assert torch.equal(loaded.encode(_square_clip(2)), module.tokenizer.eval().encode(_square_clip(2)))
    warm = TokenizerModule(pretrained=str(tmp_path / "tok"))  # the training config decides: off by default
    assert not warm.tokenizer.config.canonical_background
