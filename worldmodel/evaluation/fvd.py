"""Fréchet Video Distance (FVD) and Kernel Video Distance (KVD) with the Kinetics-400 I3D.

Protocol (Unterthiner et al. 2018, the TF reference implementation): every frame is resized
bilinearly to 224x224 (TF1 ``resize_bilinear``: ``align_corners=False`` without half-pixel
centres), values mapped to ``2x/255 - 1``, and the feature of a clip is the I3D's 400 logits
averaged over time. FVD is the Fréchet distance between Gaussians fitted to the two feature sets,
``|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2)`` in float64; KVD the unbiased MMD^2 with the
polynomial kernel ``k(x, y) = (x.y / d + 1)^3``. Compare models only at equal clip counts and lengths.
FVD is mostly blind to wrong motion: it is never the physics score.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from worldmodel.evaluation.i3d import InceptionI3d

I3D_SIZE = 224


def tf_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """``(size_out, size_in)`` matrix of TF1 ``resize_bilinear`` (source = dst * in / out, edge-clamped)."""
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    lo = src.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = src - lo
    weights = torch.zeros(size_out, size_in, dtype=torch.float64)
    weights[torch.arange(size_out), lo] += 1 - frac
    weights[torch.arange(size_out), hi] += frac
    return weights.float()


def preprocess(videos: torch.Tensor | np.ndarray, size: int = I3D_SIZE) -> torch.Tensor:
    """uint8 ``(B, T, H, W, 3)`` -> I3D input float ``(B, 3, T, size, size)`` in [-1, 1]."""
    videos = torch.as_tensor(np.asarray(videos)) if isinstance(videos, np.ndarray) else videos
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"videos must be uint8 (B, T, H, W, 3), got {videos.dtype} {tuple(videos.shape)}")
    _, _, h, w, _ = videos.shape
    rows, cols = tf_bilinear_matrix(h, size), tf_bilinear_matrix(w, size)
    x = videos.permute(0, 4, 1, 2, 3).float()  # (B, 3, T, H, W)
    x = torch.einsum("oh,bcthw,pw->bctop", rows, x, cols)  # (B, 3, T, size, size)
    return x * (2.0 / 255.0) - 1.0


def _batches(videos: np.ndarray | torch.Tensor | Iterable, batch_size: int) -> Iterator[torch.Tensor]:
    """Yield uint8 ``(b, T, H, W, 3)`` batches of at most ``batch_size`` from an array or an iterable of batches."""
    if isinstance(videos, np.ndarray | torch.Tensor):
        videos = [videos]
    for chunk in videos:
        chunk = torch.as_tensor(np.asarray(chunk)) if not isinstance(chunk, torch.Tensor) else chunk
        if chunk.ndim == 4:
            chunk = chunk.unsqueeze(0)
        yield from chunk.split(batch_size)


@torch.inference_mode()
def i3d_features(videos: np.ndarray | torch.Tensor | Iterable, model: InceptionI3d | None = None,
                 batch_size: int = 8, device: str | torch.device | None = None,
                 progress: bool = False) -> np.ndarray:
    """I3D features (time-averaged Kinetics logits) of uint8 videos: float64 ``(N, 400)``.

    ``videos`` is a uint8 array ``(N, T, H, W, 3)`` or an iterable of such batches (or single clips).
    ``model`` defaults to :func:`~worldmodel.evaluation.i3d_weights.load_i3d`.
    """
    from tqdm.auto import tqdm

    from worldmodel.evaluation.i3d_weights import load_i3d

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # channels-last 3D convolutions run about 1.7x faster on CPU (oneDNN) with identical results
    model = (model or load_i3d()).to(device, memory_format=torch.channels_last_3d)
    total = len(videos) if isinstance(videos, np.ndarray | torch.Tensor) else None
    features = []
    with tqdm(total=total, desc="I3D", unit="clip", disable=not progress) as bar:
        for batch in _batches(videos, batch_size):
            x = preprocess(batch.to(device)).contiguous(memory_format=torch.channels_last_3d)
            features.append(model(x).double().cpu().numpy())
            bar.update(len(batch))
    if not features:
        raise ValueError("no videos were given, expected at least two clips per side")
    return np.concatenate(features)


def _statistics(features: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"{name} features must be (N>=2, D), got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative rounding noise clipped)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two ``(N, D)`` feature sets, in float64.

    ``Tr((S_r S_f)^1/2)`` is computed as the trace of the PSD square root of ``S_r^1/2 S_f S_r^1/2``
    (same eigenvalues, but symmetric, so no complex round-off).
    """
    mu_r, cov_r = _statistics(real, "real")
    mu_f, cov_f = _statistics(fake, "fake")
    if mu_r.shape != mu_f.shape:
        raise ValueError(f"real and fake features differ in width: {mu_r.shape[0]} vs {mu_f.shape[0]}")
    root_r = _psd_sqrt(cov_r)
    eig = np.linalg.eigvalsh(root_r @ cov_f @ root_r)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * trace_sqrt)


def kernel_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """Unbiased MMD^2 between two ``(N, D)`` feature sets with the kernel ``(x.y / D + 1)^3`` (KVD/KID)."""
    x, y = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) < 2 or len(y) < 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"features must be (N>=2, D) with equal D, got {x.shape} and {y.shape}")
    d = x.shape[1]
    k_xx, k_yy, k_xy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())


def video_distances(real: np.ndarray | torch.Tensor | Iterable, fake: np.ndarray | torch.Tensor | Iterable,
                    model: InceptionI3d | None = None, batch_size: int = 8,
                    device: str | torch.device | None = None, progress: bool = False) -> dict[str, float]:
    """FVD and KVD between two sets of uint8 videos; returns ``{"fvd", "kvd", "n_real", "n_fake"}``."""
    from worldmodel.evaluation.i3d_weights import load_i3d

    model = model or load_i3d()
    feats_r = i3d_features(real, model, batch_size, device, progress)
    feats_f = i3d_features(fake, model, batch_size, device, progress)
    return {"fvd": frechet_distance(feats_r, feats_f), "kvd": kernel_distance(feats_r, feats_f),
            "n_real": len(feats_r), "n_fake": len(feats_f)}


def frechet_video_distance(real: np.ndarray | torch.Tensor | Iterable, fake: np.ndarray | torch.Tensor | Iterable,
                           model: InceptionI3d | None = None, batch_size: int = 8,
                           device: str | torch.device | None = None, progress: bool = False) -> float:
    """FVD between uint8 videos ``(N, T, H, W, 3)`` (arrays or iterables of batches) with the Kinetics I3D."""
    return video_distances(real, fake, model, batch_size, device, progress)["fvd"]
