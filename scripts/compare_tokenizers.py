"""Equal-compute comparison of tokenizer designs: each candidate trains for the same steps and wall-time cap.

Every candidate is ``configs/tokenizer-tiny.yaml`` with a few ``--model.init_args`` overrides and its own
output folder ``outputs/tokenizer-designs/NAME``; the runs go one after another (two torch jobs on a 2-core box
ruin each other). Score the exported tokenizers afterwards with
``python benchmarks/tokenizer.py --tokenizer outputs/tokenizer-designs/NAME/tokenizer``.

    python scripts/compare_tokenizers.py                       # all candidates, 1200 steps / 11 min each
    python scripts/compare_tokenizers.py --only fsq4096-fg10 --steps 600
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from worldmodel.io import write_text_atomic

FG = "--model.init_args.foreground_weight=10"
CROP = "--model.init_args.train_crop=32"
CANDIDATES: dict[str, list[str]] = {
    # the shipped design (4x8x8, FSQ 1000 codes) with the foreground-weighted loss, whole 64x64 frames
    "fsq1000-fg10": ["--model.init_args.fsq_levels=[8,5,5,5]", FG],
    # the same on random 32x32 crops (a quarter of the pixels per clip: about 4x the clips per second)
    "fsq1000-fg10-crop32": ["--model.init_args.fsq_levels=[8,5,5,5]", FG, CROP],
    # 12 bits per code: 4096 codes, still one plain softmax for the world model
    "fsq4096-fg10-crop32": ["--model.init_args.fsq_levels=[8,8,8,8]", FG, CROP],
    # fewer, richer tokens: 4x16x16 (80 codes per clip instead of 320) with 64000 codes (16 bits)
    "s16-fsq64k-fg10-crop32": ["--model.init_args.spatial_compression=16", "--model.init_args.fsq_levels=[8,8,8,5,5,5]",
                               FG, CROP],
}


def candidate_command(name: str, steps: int, max_time: str, config: Path) -> list[str]:
    """The ``worldmodel train`` command line of candidate ``name`` writing to ``outputs/tokenizer-designs/NAME``.

    The candidate's config is ``config`` with every ``outputs/tokenizer-tiny`` path moved to its own folder
    (written there as ``config.yaml``), so the candidates never share checkpoints or logs.
    """
    root = Path("outputs/tokenizer-designs") / name
    root.mkdir(parents=True, exist_ok=True)
    text = config.read_text().replace("outputs/tokenizer-tiny", str(root))
    write_text_atomic(root / "config.yaml", text)
    return [sys.executable, "-m", "worldmodel.cli", "train", "--config", str(root / "config.yaml"),
            f"--trainer.max_steps={steps}", f"--trainer.max_time={max_time}", *CANDIDATES[name]]


def main(argv: list[str] | None = None) -> int:
    """Train the chosen candidates one after another; print each one's wall time."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(CANDIDATES), help="candidates to run (repeatable)")
    parser.add_argument("--steps", type=int, default=1200, help="steps per candidate (the cosine schedule's length)")
    parser.add_argument("--max-time", default="00:00:11:00", help="wall-time cap per candidate, DD:HH:MM:SS")
    parser.add_argument("--config", type=Path, default=Path("configs/tokenizer-tiny.yaml"))
    args = parser.parse_args(argv)
    for name in args.only or list(CANDIDATES):
        start = time.perf_counter()
        subprocess.run(candidate_command(name, args.steps, args.max_time, args.config), check=True)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
