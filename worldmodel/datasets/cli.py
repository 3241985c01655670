"""``worldmodel data``: generate physics datasets and preview them."""

from __future__ import annotations

import argparse

from worldmodel.datasets.scenarios import SCENARIOS, SPLITS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data generate`` and ``data preview`` to the ``worldmodel`` command."""
    data = subparsers.add_parser("data", help="generate and preview physics datasets")
    commands = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    gen = commands.add_parser("generate", help="simulate episodes into a dataset folder (resumable)")
    gen.add_argument("--out", required=True, help="dataset folder")
    gen.add_argument("--episodes", type=int, required=True, help="number of episodes")
    gen.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    gen.add_argument("--split", required=True, choices=SPLITS, help="parameter ranges and random stream")
    gen.add_argument("--scenarios", default=None, help=f"comma-separated subset of {','.join(SCENARIOS)} (default all)")
    gen.add_argument("--frames", type=int, default=17, help="frames per episode (default 17)")
    gen.add_argument("--size", type=int, default=64, help="frame height and width in pixels (default 64)")
    gen.add_argument("--fps", type=float, default=10.0, help="frames per second (default 10)")
    gen.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    gen.set_defaults(func=_generate)

    prev = commands.add_parser("preview", help="write a grid image and a few mp4s of a dataset")
    prev.add_argument("--data", required=True, help="dataset folder made by `worldmodel data generate`")
    prev.add_argument("-o", "--out", required=True, help="output folder")
    prev.add_argument("--rows", type=int, default=8, help="episodes in the grid (default 8)")
    prev.add_argument("--videos", type=int, default=4, help="episodes written as mp4 (default 4)")
    prev.add_argument("--scale", type=int, default=4, help="upscaling of the mp4s (default 4)")
    prev.set_defaults(func=_preview)


def _generate(args: argparse.Namespace) -> int:
    from worldmodel.datasets.storage import generate_dataset

    manifest = generate_dataset(args.out, args.episodes, args.seed, args.split, scenarios=args.scenarios,
                                frames=args.frames, size=args.size, workers=args.workers, fps=args.fps,
                                progress=True)
    print(f"wrote {args.episodes} episodes: {manifest}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from worldmodel.datasets.preview import write_preview

    for path in write_preview(args.data, args.out, rows=args.rows, videos=args.videos, scale=args.scale):
        print(path)
    return 0
