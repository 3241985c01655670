"""FVD: the TF reference value, the Fréchet distance and KVD against independent computations, the I3D loader."""

import io
import os
import pickle

import numpy as np
import pytest
import scipy.linalg

from worldmodel.evaluation.fvd import frechet_distance, i3d_features, kernel_distance, tf_bilinear_matrix
from worldmodel.evaluation.i3d import same_padding
from worldmodel.evaluation.i3d_weights import load_checkpoint, load_i3d


def scipy_frechet(x: np.ndarray, y: np.ndarray) -> float:
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_x @ s_y).real
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(s_x + s_y - 2 * covmean))


def loop_kvd(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_frechet_and_kvd_match_independent_computations():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 12))
    y = rng.normal(loc=0.3, scale=1.5, size=(50, 12)) + rng.normal(size=(50, 1))
    assert frechet_distance(x, y) == pytest.approx(scipy_frechet(x, y), rel=1e-8)
    assert kernel_distance(x, y) == pytest.approx(loop_kvd(x, y), rel=1e-8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert abs(kernel_distance(x, x[::-1])) < 1.0  # unbiased: about 0, may be slightly negative


def test_bad_features_are_refused():
    with pytest.raises(ValueError, match="N>=2"):
        frechet_distance(np.zeros((1, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="width"):
        frechet_distance(np.zeros((3, 4)), np.zeros((3, 5)))


def test_tf_same_padding_and_legacy_resize():
    assert same_padding((224,), (7,), (2,)) == [2, 3]  # TF puts the odd cell after
    assert same_padding((15, 56, 56), (3, 3, 3), (2, 2, 2)) == [0, 1, 0, 1, 1, 1]
    m = tf_bilinear_matrix(2, 4).numpy()  # TF1 resize_bilinear: source = dst * in / out, clamped
    np.testing.assert_allclose(m, [[1, 0], [0.5, 0.5], [0, 1], [0, 1]])


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload", [{"params": Evil()}, {"params": {1, 2}}, {"params": {"w": "text"}},
                                     {"params": np.array([object()], dtype=object)}])
def test_checkpoint_loader_refuses_anything_but_arrays(payload):
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(io.BytesIO(pickle.dumps(payload)))


def test_checkpoint_loader_reads_arrays():
    tree = {"params": {"a": {"kernel": np.ones((2, 3), np.float32)}}, "batch_stats": {"m": np.zeros(2)}}
    flat = load_checkpoint(io.BytesIO(pickle.dumps(tree)))
    assert set(flat) == {"params/a/kernel", "batch_stats/m"}
    np.testing.assert_array_equal(flat["params/a/kernel"], 1)


def test_missing_weights_name_the_fetch_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="worldmodel evaluate fetch-i3d"):
        load_i3d(tmp_path / "absent.safetensors")


@pytest.mark.slow
def test_fvd_black_vs_white_matches_tf_reference(i3d):
    """8 black vs 8 white videos (30 frames, 64x64): 151.39 with the TF reference implementation.

    The I3D runs in eval mode, so a clip's feature does not depend on its batch: two distinct clips are
    pushed through the network once each (in one batch with a duplicate, checking batch independence)
    and their features stand for the eight identical copies on each side.
    """
    black, white = np.zeros((30, 64, 64, 3), np.uint8), np.full((30, 64, 64, 3), 255, np.uint8)
    feats = i3d_features(np.stack([black, white, black]), i3d, batch_size=3)  # (3, 400)
    np.testing.assert_allclose(feats[0], feats[2], atol=1e-4)
    fvd = frechet_distance(np.repeat(feats[:1], 8, axis=0), np.repeat(feats[1:2], 8, axis=0))
    assert fvd == pytest.approx(151.39, abs=0.15)
    assert frechet_distance(np.repeat(feats[:1], 8, axis=0), np.repeat(feats[2:], 8, axis=0)) == pytest.approx(
        0.0, abs=1e-3)


def test_fvd_folder_reader_batches_cuts_and_skips_bad_files(tmp_path):
    from worldmodel.evaluation.cli import _video_batches
    from worldmodel.video import write_video

    rng = np.random.default_rng(0)
    for i, (frames, size) in enumerate([(10, 32), (12, 32), (10, 24), (5, 32)]):
        write_video(tmp_path / f"{i}.mkv", rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 10)
    with pytest.warns(UserWarning) as caught:
        shapes = [b.shape for b in _video_batches(tmp_path, frames=9, batch_size=8)]
    assert shapes == [(2, 9, 32, 32, 3), (1, 9, 24, 24, 3)]  # same-size clips share a batch
    assert {("broken.mp4" in str(w.message)) or ("fewer than --frames" in str(w.message)) for w in caught} == {True}
