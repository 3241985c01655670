"""Deepen a trained world model by identity block copies (``worldmodel/model/growth.py``) to fine-tune from.

    python scripts/grow_trunk.py --world-model stages/small/world_model --out outputs/grown-init

Inserts after each block (or after ``--after 1 2``) a copy of it whose output projections are zero, checks on a
random batch that the grown model predicts what the original does, and saves it; fine-tune it with
``--model.init_args.pretrained=OUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from worldmodel.model import WorldModel
from worldmodel.model.growth import grow_depth
from worldmodel.pretrained import PretrainedFolderError, load_pretrained
from worldmodel.training.common import save_pretrained_atomic


def main(argv: list[str] | None = None) -> int:
    """Load, grow, check, save; one sentence and exit code 2 for a bad folder or bad block numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-model", type=Path, required=True, help="save_pretrained folder of a WorldModel")
    parser.add_argument("--out", type=Path, required=True, help="folder for the deeper world model")
    parser.add_argument("--after", type=int, nargs="+", default=None, help="blocks to copy (default: every block)")
    args = parser.parse_args(argv)
    try:
        model = load_pretrained(WorldModel, args.world_model).eval()
        grown = grow_depth(model, args.after).eval()
    except (FileNotFoundError, PretrainedFolderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ids = torch.randint(0, model.config.codebook_size, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        gap = (grown(ids).logits - model(ids).logits).abs().max().item()
    if gap > 1e-4:
        print(f"error: the grown model's logits differ from the original's by {gap:.2e}", file=sys.stderr)
        return 1
    save_pretrained_atomic(grown, args.out)
    print(f"wrote {args.out}: {model.config.n_layers} -> {grown.config.n_layers} blocks "
          f"({sum(p.numel() for p in grown.parameters()) / 1e6:.2f}M parameters), logits within {gap:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
