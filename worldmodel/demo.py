"""``worldmodel demo``: show a newcomer the world.

Simulates a small dataset of every scenario and writes a preview (a grid image and a few mp4s) to
the output folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run_demo(out: str | Path, episodes: int = 16, seed: int = 0) -> list[Path]:
    """Simulate ``episodes`` held-out episodes into ``out/data`` and write a preview to ``out``."""
    from worldmodel.datasets.preview import write_preview
    from worldmodel.datasets.storage import generate_dataset

    out = Path(out)
    generate_dataset(out / "data", episodes, seed, "test_id", progress=True)
    return write_preview(out / "data", out, rows=min(8, episodes), videos=4, scale=4)


def _demo(args: argparse.Namespace) -> int:
    paths = run_demo(args.out, episodes=args.episodes, seed=args.seed)
    print("demo written; open these:")
    for path in paths:
        print(f"  {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser("demo", help="simulate a few episodes and write a preview")
    parser.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    parser.add_argument("--episodes", type=int, default=16, help="episodes to simulate (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.set_defaults(func=_demo)
