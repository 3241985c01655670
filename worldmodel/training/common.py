"""Pieces both LightningModules share: the optimiser schedule and atomic ``save_pretrained`` exports."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from worldmodel.io import replace_dir


def _group_order(item: tuple[tuple[bool, float], Any]) -> tuple[bool, float]:
    """Decayed parameters first, then by learning-rate factor (the order checkpoints of one group each saved)."""
    (decay, scale), _ = item
    return not decay, scale


def adamw_warmup_cosine(module: nn.Module, total_steps: int, lr: float, weight_decay: float,
                        betas: tuple[float, float], warmup_steps: int, min_lr_ratio: float,
                        lr_scales: dict[str, float] | None = None) -> dict[str, Any]:
    """AdamW (no weight decay on vectors: norms, biases) with linear warmup then cosine decay to
    ``min_lr_ratio * lr``, stepped per batch; the ``configure_optimizers`` return value. ``lr_scales`` maps a
    parameter-name prefix to a factor on ``lr`` for the parameters under it (the first matching prefix counts)."""
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in module.named_parameters():
        scale = next((f for prefix, f in (lr_scales or {}).items() if name.startswith(prefix)), 1.0)
        groups.setdefault((param.ndim > 1, scale), []).append(param)
    ordered = sorted(groups.items(), key=_group_order)
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": weight_decay if decay else 0.0, "lr": lr * scale}
                                   for (decay, scale), params in ordered], lr=lr, betas=tuple(betas))
    total = max(1, int(total_steps))
    warmup = min(warmup_steps, total // 2)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def save_pretrained_atomic(model: Any, out_dir: str | Path) -> Path:
    """``model.save_pretrained`` into ``out_dir`` atomically (written beside it, then swapped into place by rename:
    readers see the old export or the new one, never none)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    return replace_dir(tmp, out_dir)


def export_component(module_class: Any, attribute: str, checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Load a Lightning checkpoint of ``module_class`` (``weights_only``) and ``save_pretrained`` its ``attribute``."""
    module = module_class.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    return save_pretrained_atomic(getattr(module, attribute), out_dir)


class ExportingModule(L.LightningModule):
    """What both LightningModules share: the AdamW schedule from their hyperparameters (``lr``, ``weight_decay``,
    ``betas``, ``warmup_steps``, ``min_lr_ratio``) and the export of the trained component (the attribute named by
    ``exported``) to ``hparams.export_dir`` after each real validation and at the end of training."""

    exported: str = "model"

    def export(self) -> None:
        """``save_pretrained`` the trained component to ``export_dir`` atomically (rank zero, when set)."""
        if self.hparams.export_dir and self.trainer.is_global_zero:
            save_pretrained_atomic(getattr(self, self.exported), self.hparams.export_dir)

    def on_validation_epoch_end(self) -> None:
        """Export after each real validation (not the sanity check)."""
        if not self.trainer.sanity_checking:
            self.export()

    def on_train_end(self) -> None:
        """Export the final component."""
        self.export()

    def configure_optimizers(self) -> dict[str, Any]:
        """AdamW (no weight decay on vectors) with linear warmup and cosine decay, stepped per batch."""
        hp = self.hparams
        return adamw_warmup_cosine(self, self.trainer.estimated_stepping_batches, hp.lr, hp.weight_decay,
                                   tuple(hp.betas), hp.warmup_steps, hp.min_lr_ratio, self.lr_scales())

    def lr_scales(self) -> dict[str, float]:
        """Parameter-name prefix -> factor on ``lr`` (none here; subclasses may give some parameters their own)."""
        return {}
