"""Text to video with the Python API: load a checkpoint folder, sample, write an mp4 and a GIF.

    python scripts/text_to_video.py "a red ball falls and bounces" --out outputs/t2v
"""

import argparse
from pathlib import Path

import torch

from worldmodel.pipelines import TextToVideoPipeline
from worldmodel.pipelines.export import save_video


def main() -> None:
    """Generate one video per seed for a prompt."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt")
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default: the packaged one)")
    parser.add_argument("--out", type=Path, default=Path("outputs/text_to_video"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--guidance", type=float, default=3.0)
    args = parser.parse_args()

    pipe = TextToVideoPipeline.from_checkpoint(args.checkpoint)  # offline: one folder, no downloads
    for seed in args.seeds:
        video = pipe(args.prompt, num_frames=args.frames, guidance_scale=args.guidance,
                     generator=torch.Generator().manual_seed(seed)).frames[0]  # uint8 (T, H, W, 3)
        save_video(args.out / f"seed{seed}.mp4", video, fps=10)  # H.264 yuv420p: plays in browsers
        save_video(args.out / f"seed{seed}.gif", video, fps=10, gif_scale=4)
        print(f"seed {seed}: {args.out}/seed{seed}.mp4 and .gif")


if __name__ == "__main__":
    main()
