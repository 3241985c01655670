"""Pieces both LightningModules share: the optimiser schedule and atomic ``save_pretrained`` exports."""

from __future__ import annotations

import argparse
import importlib
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldmodel.io import replace_dir


def adamw_warmup_cosine(module: nn.Module, total_steps: int, lr: float, weight_decay: float,
                        betas: tuple[float, float], warmup_steps: int, min_lr_ratio: float) -> dict[str, Any]:
    """AdamW (no weight decay on vectors: norms, biases) with linear warmup then cosine decay to
    ``min_lr_ratio * lr``, stepped per batch; the ``configure_optimizers`` return value."""
    decay = [p for p in module.parameters() if p.ndim > 1]
    no_decay = [p for p in module.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=tuple(betas))
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


def export_main(argv: list[str] | None, module_path: str, class_name: str, attribute: str) -> int:
    """``python -m MODULE_PATH CHECKPOINT OUT_DIR``: export the ``attribute`` of a ``class_name`` checkpoint.

    The class is imported through the package, never from ``__main__`` (Lightning's checkpoint class check
    would refuse a class defined in ``__main__``).
    """
    parser = argparse.ArgumentParser(description=f"Export the {attribute} of a {class_name} checkpoint.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: checkpoint {args.checkpoint} does not exist", file=sys.stderr)
        return 2
    module_class = getattr(importlib.import_module(module_path), class_name)
    print(export_component(module_class, attribute, args.checkpoint, args.out_dir))
    return 0
