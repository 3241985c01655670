"""Does a world model learn to read the caption's colour? A minutes-long check on the first latent frame.

    python scripts/toy_caption_reading.py --cache outputs/tokens-small/train --steps 400
    python scripts/toy_caption_reading.py --cache outputs/tokens-small/train --steps 400 --code-levels 8,8,8,8
    python scripts/toy_caption_reading.py --cache outputs/tokens-small/train --steps 400 --caption-probe 0.3

Trains a small dense `WorldModel` (2 layers of width 128, bridges at both) from scratch to generate the first latent
frame of a token cache's first `--episodes` episodes from their captions (a paraphrase drawn per step, 10 % of
captions dropped, as in training), then scores the last `--held-out` of them whose caption names one colour:
the first frame's cross-entropy given the caption, given the caption with its colour swapped (red <-> purple,
green <-> orange, ...) and given no caption. A model that reads the colour scores the swapped caption worse than
its own; equal figures mean the colour is ignored. One JSON line per run goes to `--out` (appended).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from worldmodel.datasets.palette import COLOR_NAMES, caption_colours
from worldmodel.model import WorldModel
from worldmodel.tokenizers.text import ByteTokenizer
from worldmodel.training.worldmodel_module import caption_probe_loss

COLOUR = re.compile(r"\b(" + "|".join(COLOR_NAMES) + r")\b")


def swap_colour(caption: str) -> str:
    """The caption with each colour name replaced by the one half the palette away."""
    return COLOUR.sub(lambda m: COLOR_NAMES[(COLOR_NAMES.index(m.group(1)) + len(COLOR_NAMES) // 2)
                                            % len(COLOR_NAMES)], caption)


def load_first_frames(cache: Path, episodes: int) -> tuple[torch.Tensor, list[list[str]], int]:
    """(first latent frames (E, h*w) long, each episode's captions, codebook size) of a token cache."""
    meta = json.loads((cache / "meta.json").read_text())
    codes = load_file(str(cache / "codes.safetensors"))["codes"][:episodes, 0]
    captions = [json.loads(line)["captions"] for line in (cache / "index.jsonl").read_text().splitlines()][:episodes]
    if len(captions) < episodes:
        raise ValueError(f"{cache} holds {len(captions)} episodes, fewer than --episodes {episodes}")
    return codes.reshape(episodes, -1).long(), captions, int(meta["codebook_size"])


def main(argv: list[str] | None = None) -> int:
    """Train the toy, print and append its three held-out figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", required=True, help="token cache folder (codes.safetensors, index.jsonl, meta)")
    parser.add_argument("--episodes", type=int, default=800)
    parser.add_argument("--held-out", type=int, default=64)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--text-center", action="store_true", help="centre the text states (config text_center)")
    parser.add_argument("--bridge-qk-norm", action="store_true", help="normalised bridge queries and keys")
    parser.add_argument("--code-levels", default="", help="FSQ levels for digit-factorised codes, e.g. 8,8,8,8")
    parser.add_argument("--colour-only", action="store_true", help="keep only the colour words of each caption")
    parser.add_argument("--caption-probe", type=float, default=0.0,
                        help="weight of the caption-colour probe loss (WorldModelModule caption_probe_weight)")
    parser.add_argument("--foreground-weight", type=float, default=1.0,
                        help="training loss weight of codes outside the 3 most frequent (background) ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="outputs/toy_caption_reading.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    codes, captions, codebook = load_first_frames(Path(args.cache), args.episodes)
    if args.colour_only:
        captions = [[" ".join(caption_colours(c)) for c in row] for row in captions]
    side = int(codes.shape[1] ** 0.5)
    levels = [int(x) for x in args.code_levels.split(",")] if args.code_levels else None
    model = WorldModel(codebook_size=codebook, latent_frames=1, latent_height=side, latent_width=side, d_model=128,
                       n_layers=2, n_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=12,
                       v_head_dim=32, n_dense_layers=2, dense_hidden=384, text_d_model=64, text_layers=1,
                       text_heads=4, text_center=args.text_center, bridge_qk_norm=args.bridge_qk_norm,
                       code_levels=levels)
    probe = torch.nn.Linear(128, len(COLOR_NAMES))
    tokenizer, train = ByteTokenizer(128), args.episodes - args.held_out
    background_codes = torch.bincount(codes[:train].flatten(), minlength=codebook).topk(3).indices
    optimizer = torch.optim.AdamW([*model.parameters(), *probe.parameters()], lr=args.lr, weight_decay=0.1)
    generator = torch.Generator().manual_seed(args.seed)

    def inputs(frames: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.full((frames.shape[0], 1), model.bos_token_id), frames[:, :-1]], dim=1)

    def nll(frames: torch.Tensor, prompts: list[str], foreground_weight: float = 1.0) -> torch.Tensor:
        out = model(inputs(frames), model.encode_text(*tokenizer.encode(prompts)))
        logits = out.logits
        losses = F.cross_entropy(logits.flatten(0, 1), frames.flatten(), reduction="none")  # (B * N,)
        weights = torch.where(torch.isin(frames.flatten(), background_codes), 1.0, foreground_weight)
        loss = (losses * weights).sum() / weights.sum()
        if args.caption_probe and model.training:
            loss = loss + args.caption_probe * caption_probe_loss(probe, out.hidden_states, prompts)
        return loss

    for _ in range(args.steps):
        rows = torch.randint(0, train, (args.batch_size,), generator=generator).tolist()
        draws = torch.randint(0, 1 << 30, (args.batch_size,), generator=generator).tolist()
        drop = (torch.rand(args.batch_size, generator=generator) < 0.1).tolist()
        prompts = ["" if d else captions[r][k % len(captions[r])] for r, k, d in zip(rows, draws, drop, strict=True)]
        loss = nll(codes[rows], prompts, args.foreground_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    test = [i for i in range(train, args.episodes) if len(set(COLOUR.findall(captions[i][0]))) == 1]
    own = [captions[i][0] for i in test]
    with torch.no_grad():
        figures = {name: round(nll(codes[test], prompts).item(), 4) for name, prompts in
                   (("own", own), ("colour_swapped", [swap_colour(c) for c in own]), ("empty", [""] * len(test)))}
    record = {"cache": args.cache, "steps": args.steps, "text_center": args.text_center,
              "bridge_qk_norm": args.bridge_qk_norm, "code_levels": levels, "colour_only": args.colour_only,
              "caption_probe": args.caption_probe,
              "foreground_weight": args.foreground_weight, "train_loss": round(loss.item(), 4),
              "held_out_episodes": len(test), **figures}
    print(json.dumps(record))
    with Path(args.out).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
