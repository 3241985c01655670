"""Give a trained world model the decoder's code features (``worldmodel/model/code_features.py``) to fine-tune from.

    python scripts/add_code_features.py --world-model stages/small/world_model --tokenizer stages/small/tokenizer \\
        --out outputs/features-init

Computes every code's features with the tokenizer that made the world model's codes, and saves the world model
with ``code_feature_dim`` set and the table filled; its new projections are zero, so it predicts exactly as before
until a fine-tune (``--model.init_args.pretrained=OUT``) trains them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from worldmodel.datasets.palette import BACKGROUND
from worldmodel.model import WorldModel
from worldmodel.model.code_features import decoder_code_features
from worldmodel.pretrained import PretrainedFolderError, load_pretrained
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.training.common import save_pretrained_atomic


def main(argv: list[str] | None = None) -> int:
    """Load, compute the table, save; one sentence and exit code 2 for a bad folder or a mismatched pair."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-model", type=Path, required=True, help="save_pretrained folder of a WorldModel")
    parser.add_argument("--tokenizer", type=Path, required=True, help="save_pretrained folder of its tokenizer")
    parser.add_argument("--out", type=Path, required=True, help="folder for the world model with features")
    args = parser.parse_args(argv)
    try:
        tokenizer = load_pretrained(VideoTokenizer, args.tokenizer).eval()
        features = decoder_code_features(tokenizer, BACKGROUND)
        model = load_pretrained(WorldModel, args.world_model, code_feature_dim=features.shape[1])
    except (FileNotFoundError, PretrainedFolderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if model.config.codebook_size != tokenizer.codebook_size:
        print(f"error: {args.world_model} reads {model.config.codebook_size} codes but {args.tokenizer} makes "
              f"{tokenizer.codebook_size}: give the tokenizer the world model was trained on", file=sys.stderr)
        return 2
    with torch.no_grad():
        model.code_features.table.copy_(features)
    save_pretrained_atomic(model, args.out)
    print(f"wrote {args.out}: {features.shape[1]} features per code, {features.shape[0]} codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
