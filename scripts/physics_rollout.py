"""Physics rollout with the Python API: simulate a scene, give the world model its first frames, compare.

    python scripts/physics_rollout.py --scenario parabola --seed 3 --out outputs/rollout
"""

import argparse
from pathlib import Path

import torch

from worldmodel.datasets import SCENARIOS, simulate
from worldmodel.pipelines import PhysicsRolloutPipeline
from worldmodel.pipelines.export import save_video
from worldmodel.video import side_by_side


def main() -> None:
    """Write prediction | simulator side by side for one held-out episode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default: the packaged one)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="parabola")
    parser.add_argument("--seed", type=int, default=0, help="episode seed (test_id split) and sampling seed")
    parser.add_argument("--context-frames", type=int, default=5)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--out", type=Path, default=Path("outputs/physics_rollout"))
    args = parser.parse_args()

    pipe = PhysicsRolloutPipeline.from_checkpoint(args.checkpoint)
    height, _ = pipe.frame_size
    truth = simulate(args.scenario, "test_id", args.seed, frames=args.frames, size=height).frames  # (T, H, W, 3)
    prediction = pipe(truth[:args.context_frames], num_frames=args.frames,
                      generator=torch.Generator().manual_seed(args.seed)).frames[0]
    comparison = side_by_side(prediction, truth)  # prediction | simulator
    save_video(args.out / f"{args.scenario}_{args.seed}.mp4", comparison, fps=10)
    save_video(args.out / f"{args.scenario}_{args.seed}.gif", comparison, fps=10, gif_scale=4)
    print(f"wrote {args.out}/{args.scenario}_{args.seed}.mp4 (left: prediction, right: simulator)")


if __name__ == "__main__":
    main()
