"""Video conversion and file IO round trips."""

import numpy as np
import pytest
import torch

from worldmodel.video import VideoReadError, read_video, side_by_side, to_float, to_uint8, write_gif, write_video


def _random_video(t=5, h=16, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_float_uint8_round_trip():
    v = torch.from_numpy(_random_video()).unsqueeze(0)
    x = to_float(v)
    assert x.shape == (1, 3, 5, 16, 24) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(to_uint8(x), v)


def test_to_float_rejects_bad_shapes_and_nans():
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        to_float(torch.zeros(1, 5, 8, 8, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NaN"):
        to_float(torch.full((1, 3, 1, 8, 8), float("nan")))


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_lossless_round_trip_is_bit_exact(tmp_path, backend):
    v = _random_video()
    path = write_video(tmp_path / "clip.mkv", v, fps=10)
    assert np.array_equal(read_video(path, backend=backend), v)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_mp4_and_gif_are_written(tmp_path):
    v = _random_video(h=15, w=17)
    out = read_video(write_video(tmp_path / "clip.mp4", v, fps=10))
    assert out.shape == (5, 16, 18, 3)
    assert write_gif(tmp_path / "clip.gif", v).stat().st_size > 0
    assert side_by_side(v, v[:3]).shape == (5, 15, 17 * 2 + 2, 3)


def test_bad_files_raise_one_clear_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    for path in (empty, junk, tmp_path / "missing.mp4"):
        with pytest.raises(VideoReadError, match=path.name):
            read_video(path)


def test_same_frames_give_same_file_bytes(tmp_path):
    v = _random_video()
    a = write_video(tmp_path / "a.mkv", v).read_bytes()
    b = write_video(tmp_path / "b.mkv", v).read_bytes()
    assert a == b


def test_atomic_writes_get_the_usual_permissions(tmp_path):
    import os

    path = write_video(tmp_path / "clip.mkv", _random_video())
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
