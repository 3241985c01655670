"""``TokenizerModule``: Lightning training of the :class:`~worldmodel.tokenizers.VideoTokenizer`.

Objective: L2 reconstruction by default, with optional L1 and an L1 loss on spatial and temporal
finite differences (edges), plus the quantizer's own loss (VQ commitment; zero for FSQ). The L1 terms
are off by default: on disc videos they hold the model on the plain background far longer (a 4-clip
overfit reached 22.4 dB in 160 steps with L2 alone, 19.6 dB with L2 + edge L1, 19.1 dB with all three).
Logged: loss terms, PSNR, SSIM (torchmetrics), codebook usage and perplexity per batch and usage
over the whole validation set.

Batches are ``{"video": uint8 (B, T, H, W, 3), ...}`` as produced by the physics and video-folder
datamodules. Hyperparameters are plain values so that checkpoints load with ``weights_only=True``.

Export the trained tokenizer (config.json + safetensors) with ``export_dir`` (written after each
validation and at the end of training) or from any checkpoint with ``worldmodel export CHECKPOINT.ckpt OUT_DIR``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from worldmodel.pretrained import load_pretrained
from worldmodel.tokenizers.video_tokenizer import VideoTokenizer
from worldmodel.training.common import ExportingModule


def gradient_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 difference of finite differences along time, height and width of ``(B, C, T, H, W)`` videos."""
    loss = prediction.new_zeros(())
    for dim in (2, 3, 4):
        if prediction.shape[dim] > 1:
            loss = loss + F.l1_loss(torch.diff(prediction, dim=dim), torch.diff(target, dim=dim))
    return loss


def foreground_weights(target: torch.Tensor, weight: float, threshold: float = 0.1, dilate: int = 1) -> torch.Tensor:
    """Per-pixel loss weights ``(B, 1, T, H, W)``: ``1 + weight`` on foreground, 1 elsewhere.

    Foreground = pixels whose colour differs from their frame's median colour by more than ``threshold`` (in
    [-1, 1] units) in some channel, grown by ``dilate`` pixels so that edges count too. On the simulator's
    videos the median colour is the background and the foreground is the balls; on other videos it marks
    what stands out from the frame's dominant colour. Small objects then weigh more than their pixel share.
    """
    b, c, t, h, w = target.shape
    median = target.float().flatten(3).median(dim=3).values[..., None, None]  # (B, C, T, 1, 1)
    mask = ((target.float() - median).abs().amax(dim=1, keepdim=True) > threshold).float()  # (B, 1, T, H, W)
    if dilate > 0:
        k = 2 * dilate + 1
        mask = F.max_pool3d(mask, kernel_size=(1, k, k), stride=1, padding=(0, dilate, dilate))
    return 1.0 + weight * mask


def _unit_range(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (prediction.float().clamp(-1, 1) + 1) / 2, (target.float() + 1) / 2


def video_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-video PSNR (dB) of ``(B, 3, T, H, W)`` videos in [-1, 1] (the prediction clamped to it): ``(B,)``."""
    pred, real = _unit_range(prediction, target)
    return peak_signal_noise_ratio(pred, real, data_range=1.0, reduction="none", dim=(1, 2, 3, 4))


def video_psnr_ssim(prediction: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video PSNR (dB) and mean per-frame SSIM of ``(B, 3, T, H, W)`` videos in [-1, 1]: two ``(B,)`` tensors."""
    pred, real = _unit_range(prediction, target)
    b, c, t, h, w = pred.shape
    frames = (pred.transpose(1, 2).reshape(b * t, c, h, w), real.transpose(1, 2).reshape(b * t, c, h, w))
    ssim = structural_similarity_index_measure(*frames, data_range=1.0, reduction="none")  # (B * T,)
    return video_psnr(prediction, target), ssim.view(b, t).mean(1)


class TokenizerModule(ExportingModule):
    """Trains a :class:`VideoTokenizer`; the tokenizer arguments are those of its config.

    Args:
        lr, weight_decay, betas: AdamW settings; linear warmup for ``warmup_steps`` then cosine decay
            to ``lr * min_lr_ratio`` at the trainer's last step.
        l1_weight, l2_weight, gradient_weight, quantizer_weight: loss weights.
        foreground_weight: extra weight of foreground pixels in the L1/L2 terms (see :func:`foreground_weights`;
            0 = every pixel alike). The loss is the weighted mean, so its scale stays that of a plain mean.
        train_frames: crop training clips to this many frames (``1 + tc * k``) at a random start, to
            make steps cheaper; ``None`` trains on whole clips.
        train_crop: crop training clips to a random ``train_crop x train_crop`` window (a multiple of the
            spatial compression; the network is convolutional, so a 32x32 crop costs a quarter of a 64x64 frame);
            ``None`` trains on whole frames. Validation always uses whole frames.
        canonical_background, background_tolerance, background_margin: how the tokenizer's ``encode`` treats
            plain background (see :class:`VideoTokenizer`; saved with the export, also over ``pretrained``'s).
        export_dir: if set, ``save_pretrained`` the tokenizer there after each validation and at the end.
        pretrained: start from a ``save_pretrained`` folder instead of random weights.
    """

    exported = "tokenizer"

    def __init__(self, temporal_compression: int = 4, spatial_compression: int = 8,
                 channels: list[int] | None = None, blocks: int = 1, patch_size: int = 4, norm: str = "group",
                 quantizer_type: str = "fsq", fsq_levels: list[int] | None = None,
                 vq_codebook_size: int = 1024, vq_dim: int = 8, vq_decay: float = 0.99,
                 vq_commitment: float = 0.25, vq_dead_threshold: float = 1e-2, vq_seed: int = 0,
                 lr: float = 5e-4, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.99),
                 warmup_steps: int = 200, min_lr_ratio: float = 0.05,
                 l1_weight: float = 0.0, l2_weight: float = 1.0, gradient_weight: float = 0.0,
                 quantizer_weight: float = 1.0, foreground_weight: float = 0.0, train_frames: int | None = None,
                 train_crop: int | None = None, canonical_background: bool = False,
                 background_tolerance: float = 3.0, background_margin: int = 0,
                 export_dir: str | None = None, pretrained: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        if pretrained:
            self.tokenizer = load_pretrained(VideoTokenizer, pretrained).train()  # loaded in eval mode
        else:
            self.tokenizer = VideoTokenizer(
                temporal_compression=temporal_compression, spatial_compression=spatial_compression,
                channels=tuple(channels or (32, 64, 128)), blocks=blocks, patch_size=patch_size, norm=norm,
                quantizer_type=quantizer_type, fsq_levels=tuple(fsq_levels or (8, 5, 5, 5)),
                vq_codebook_size=vq_codebook_size, vq_dim=vq_dim, vq_decay=vq_decay, vq_commitment=vq_commitment,
                vq_dead_threshold=vq_dead_threshold, vq_seed=vq_seed)
        self.tokenizer.set_background_codes(canonical_background, background_tolerance, background_margin)
        if train_frames is not None:
            self.tokenizer.latent_shape(train_frames, spatial_compression, spatial_compression)  # validates
        if train_crop is not None:
            self.tokenizer.latent_shape(1, train_crop, train_crop)  # validates
        self._val_counts: torch.Tensor | None = None

    def _video(self, batch: dict[str, Any] | torch.Tensor) -> torch.Tensor:
        video = batch["video"] if isinstance(batch, dict) else batch
        return video  # uint8 (B, T, H, W, 3) or float (B, 3, T, H, W)

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        """Random crop of float ``(B, 3, T, H, W)`` to ``train_frames`` frames and a ``train_crop`` square window.

        The window is drawn per clip, so a batch still sees many parts of many frames."""
        frames, size = self.hparams.train_frames, self.hparams.train_crop
        if frames is not None and x.shape[2] > frames:
            start = int(torch.randint(0, x.shape[2] - frames + 1, ()))
            x = x[:, :, start:start + frames]
        h, w = x.shape[3:]
        if size is None or (h <= size and w <= size):
            return x
        size_h, size_w = min(size, h), min(size, w)
        tops = torch.randint(0, h - size_h + 1, (x.shape[0],)).tolist()
        lefts = torch.randint(0, w - size_w + 1, (x.shape[0],)).tolist()
        return torch.stack([clip[:, :, top:top + size_h, left:left + size_w]
                            for clip, top, left in zip(x, tops, lefts, strict=True)])  # (B, 3, T', size, size)

    def _losses(self, x: torch.Tensor, stage: str) -> tuple[torch.Tensor, Any]:
        out = self.tokenizer(x)
        rec, x = out.reconstruction.float(), x.float()
        hp = self.hparams
        if hp.foreground_weight > 0:
            weights = foreground_weights(x, hp.foreground_weight)  # (B, 1, T, H, W)
            norm = weights.sum() * x.shape[1]
            l1 = ((rec - x).abs() * weights).sum() / norm
            l2 = ((rec - x).pow(2) * weights).sum() / norm
        else:
            l1, l2 = F.l1_loss(rec, x), F.mse_loss(rec, x)
        grad = gradient_loss(rec, x)
        loss = (hp.l1_weight * l1 + hp.l2_weight * l2 + hp.gradient_weight * grad
                + hp.quantizer_weight * out.quantizer_loss)
        with torch.no_grad():
            psnr = video_psnr(rec, x).mean()
        self.log_dict({f"{stage}/loss": loss, f"{stage}/l1": l1, f"{stage}/l2": l2, f"{stage}/gradient": grad,
                       f"{stage}/quantizer_loss": out.quantizer_loss, f"{stage}/usage": out.usage,
                       f"{stage}/perplexity": out.perplexity},
                      prog_bar=False, sync_dist=stage == "val", batch_size=x.shape[0])
        self.log(f"{stage}/psnr", psnr, prog_bar=True, sync_dist=stage == "val", batch_size=x.shape[0])
        return loss, out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One optimisation step on a batch of videos."""
        x = self._crop(self.tokenizer.preprocess(self._video(batch)))  # (B, 3, T, H, W)
        loss, _ = self._losses(x, "train")
        return loss

    def on_validation_epoch_start(self) -> None:
        """Reset the validation code histogram."""
        self._val_counts = torch.zeros(self.tokenizer.codebook_size, dtype=torch.long, device=self.device)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Losses, PSNR/SSIM and code histogram on whole validation clips."""
        x = self.tokenizer.preprocess(self._video(batch))
        _, out = self._losses(x, "val")
        _, ssim = video_psnr_ssim(out.reconstruction, x)
        self.log("val/ssim", ssim.mean(), prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        self._val_counts += torch.bincount(out.indices.reshape(-1), minlength=self.tokenizer.codebook_size)

    def on_validation_epoch_end(self) -> None:
        """Log codebook usage over the whole validation set; export the tokenizer."""
        counts = self.all_gather(self._val_counts)
        counts = counts.sum(0) if counts.ndim > 1 else counts
        self.log("val/codebook_usage", (counts > 0).float().mean(), sync_dist=False, rank_zero_only=True)
        super().on_validation_epoch_end()  # export
