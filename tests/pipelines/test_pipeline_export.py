"""Output helpers: grid layout and writing by suffix."""

import numpy as np
import pytest

from worldmodel.pipelines.export import save_video, video_grid
from worldmodel.video import read_video


def test_video_grid_layout():
    videos = np.stack([np.full((3, 4, 6, 3), 10 * i, np.uint8) for i in range(5)])  # (5, T, H, W, 3)
    grid = video_grid(videos, columns=3, gap=2)
    assert grid.shape == (3, 2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    assert (grid[:, :4, 8:14] == 10).all()  # row 0, column 1
    assert (grid[:, 6:, 8:14] == 40).all()  # row 1, column 1 = video 4
    assert (grid[:, 6:, 16:] == 255).all()  # the empty cell is white
    assert video_grid(videos[:1]).shape == (3, 4, 6, 3)
    with pytest.raises(ValueError, match="uint8 \\(N, T, H, W, 3\\)"):
        video_grid(videos[0])


def test_save_video_by_suffix(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(read_video(save_video(tmp_path / "a.mkv", frames)), frames)  # lossless
    mp4 = read_video(save_video(tmp_path / "a.mp4", frames, fps=24))
    assert mp4.shape == frames.shape
    assert read_video(save_video(tmp_path / "a.gif", frames, gif_scale=2)).shape == (4, 32, 32, 3)
    with pytest.raises(ValueError, match="must end in one of"):
        save_video(tmp_path / "a.avi", frames)
    with pytest.raises(ValueError, match="fps"):
        save_video(tmp_path / "b.mp4", frames, fps=0)
