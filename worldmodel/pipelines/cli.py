"""``worldmodel generate`` (text to video) and ``worldmodel rollout`` (continue a video) sub-commands."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from worldmodel.pipelines.limits import MAX_GUIDANCE


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, type=Path,
                        help="output file: .mp4 (H.264, plays in browsers), .gif or .mkv (lossless)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="pipeline folder (save_pretrained); default: the packaged worldmodel/assets/default")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same video")
    parser.add_argument("--frames", type=int, default=None,
                        help="video frames, 1 + 4k (default: the model's training length; longer slides a window)")
    parser.add_argument("--window-rule", default="reencode", choices=("reencode", "shift"),
                        help="past the training length: 'reencode' (default) re-encodes the kept frames so each "
                             "window starts on a single-frame latent as in training; 'shift' keeps their codes")
    parser.add_argument("--fps", type=float, default=10.0, help="frames per second of the output file")
    parser.add_argument("--temperature", type=float, help="sampling temperature, 0 = greedy (default: 1 for generate, "
                        "0 for rollout: the settings measured best)")
    parser.add_argument("--top-k", type=int,
                        help="sample from the k most likely codes (default: 5 for generate, all for rollout)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling threshold in (0, 1]")
    parser.add_argument("--speculative", nargs="?", const="draft", default=False, choices=("draft", "frame"),
                        help="speculative decoding, same distribution: 'draft' (the default) proposes with the "
                             "checkpoint's draft model, 'frame' copies the previous latent frame's codes; measured "
                             "NO FASTER with the packaged default (0.74x to 1.06x of plain decoding over runs, "
                             "benchmarks/results/generation.json)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch-invariant", action="store_true",
                        help="decode as `worldmodel serve` does (rows padded to 4, experts run densely), so the "
                             "video equals a server answer with the same seed and settings byte for byte; slower")


MAX_NUM_VIDEOS = 16  # videos per `generate` call (one grid); more would not fit a typical machine's memory


def register(subparsers: Any) -> None:
    """Add ``generate`` and ``rollout`` to the ``worldmodel`` command."""
    generate = subparsers.add_parser("generate", help="generate a video from a text prompt",
                                     description="Generate a video from a text prompt with the world model. "
                                                 "An empty prompt is refused; --unconditional generates "
                                                 "without one.")
    generate.add_argument("prompt", nargs="?", default=None,
                          help="what should happen, e.g. 'a red ball falls and bounces'")
    generate.add_argument("--unconditional", action="store_true",
                          help="generate without a prompt (give no PROMPT; guidance is then off)")
    _add_common(generate)
    generate.add_argument("--guidance", type=float, default=3.0,
                          help=f"classifier-free guidance scale from 0 to {MAX_GUIDANCE:g} (1 = off)")
    generate.add_argument("--num-videos", type=int, default=1,
                          help=f"videos to sample, 1 to {MAX_NUM_VIDEOS} (written as one grid)")
    # the settings measured best for text adherence on val captions
    generate.set_defaults(func=run_generate, temperature=1.0, top_k=5)

    rollout = subparsers.add_parser("rollout", help="continue a video from its first frames",
                                    description="Continue a video: its first K frames are the context, the "
                                                "world model imagines the rest.")
    rollout.add_argument("input", type=Path, help="input video (e.g. a dataset episode .mkv)")
    rollout.add_argument("--context-frames", type=int, required=True,
                         help="how many leading frames of INPUT to keep as context (1 + 4k)")
    _add_common(rollout)
    rollout.add_argument("--prompt", default=None, help="optional text condition")
    rollout.add_argument("--guidance", type=float, default=1.0,
                         help=f"guidance scale from 0 to {MAX_GUIDANCE:g}, with --prompt (1 = off)")
    rollout.add_argument("--compare-sim", action="store_true",
                         help="write prediction | simulator side by side (needs INPUT's annotation JSON: the "
                              "dataset layout, or INPUT with a .json suffix)")
    # greedy rollouts had the lowest velocity error on val episodes
    rollout.set_defaults(func=run_rollout, temperature=0.0, top_k=None)


def check_device(device: str | None) -> str:
    """The torch device to run on (default: cuda when available); a clear error for one that cannot be used."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a torch device (expected cpu, cuda or cuda:N)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available on this machine (use --device cpu)")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: only cpu and cuda devices are supported")
    return device


def _check_args(args: argparse.Namespace) -> None:
    """Check every argument and the output path before any work (nothing loads until they pass)."""
    from worldmodel.io import check_writable_file
    from worldmodel.pipelines.base import check_num_frames, read_limits

    _check_output(args)
    check_writable_file(args.output, "-o")
    if not (math.isfinite(args.guidance) and 0 <= args.guidance <= MAX_GUIDANCE):
        raise ValueError(f"--guidance must be a number from 0 to {MAX_GUIDANCE:g} (1 = off), got {args.guidance}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise ValueError(f"--temperature must be a finite number >= 0 (0 = greedy), got {args.temperature}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.seed < 0:
        raise ValueError(f"--seed must be 0 or more, got {args.seed}")
    args.device = check_device(args.device)
    limits = read_limits(args.checkpoint)
    if args.top_k is not None and not 1 <= args.top_k <= limits.codebook_size:
        raise ValueError(f"--top-k must be from 1 to the {limits.codebook_size} codes of this model, got {args.top_k}")
    if args.frames is not None:
        check_num_frames(args.frames, limits.temporal_compression, limits.max_frames, what="--frames")


def _check_output(args: argparse.Namespace) -> None:
    """Fail before any work on an output suffix or fps that cannot be written."""
    from worldmodel.pipelines.export import check_output_path

    check_output_path(args.output)
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise ValueError(f"--fps must be a positive number, got {args.fps}")


def _setup(args: argparse.Namespace, pipeline_class: Any) -> tuple[Any, Any]:
    """The pipeline on the chosen device and a seeded generator there."""
    import torch

    pipe = pipeline_class.from_checkpoint(args.checkpoint).to(args.device)
    return pipe, torch.Generator(args.device).manual_seed(args.seed)


def _prompt(args: argparse.Namespace) -> str | None:
    """The prompt of ``generate``: refused when empty unless ``--unconditional`` (then ``None``)."""
    if args.unconditional:
        if args.prompt is not None:
            raise ValueError("give either a PROMPT or --unconditional, not both")
        return None
    if args.prompt is None or not args.prompt.strip():
        raise ValueError("the prompt is empty: describe the video in words, or pass --unconditional to generate "
                         "without a prompt")
    return args.prompt


def _batch_invariant(pipe: Any, prompt: str | None, args: argparse.Namespace, context: Any = None) -> Any:
    """One clip decoded by the server's batch-invariant decoder: uint8 ``(T, H, W, 3)``."""
    from worldmodel.pipelines.sampling import SamplingParams
    from worldmodel.serving.batched import BatchedDecoder, ClipRequest

    if args.speculative:
        raise ValueError("--batch-invariant decodes as the server does, without speculation: drop --speculative")
    request = ClipRequest(prompt or "", args.seed, args.frames or pipe.trained_frames, args.guidance,
                          SamplingParams(args.temperature, args.top_k, args.top_p), context,
                          window_rule=args.window_rule)
    return BatchedDecoder(pipe)([request])[0]


def run_generate(args: argparse.Namespace) -> int:
    """Handler of ``worldmodel generate``."""
    from worldmodel.pipelines.export import save_video, video_grid
    from worldmodel.pipelines.text_to_video import TextToVideoPipeline

    prompt = _prompt(args)
    if not 1 <= args.num_videos <= MAX_NUM_VIDEOS:
        raise ValueError(f"--num-videos must be from 1 to {MAX_NUM_VIDEOS}, got {args.num_videos}")
    _check_args(args)
    if args.batch_invariant and args.num_videos != 1:
        raise ValueError("--batch-invariant makes one video per command (as one server request): drop --num-videos")
    pipe, generator = _setup(args, TextToVideoPipeline)
    if args.batch_invariant:
        frames = _batch_invariant(pipe, prompt, args)[None]  # (1, T, H, W, 3)
    else:
        frames = pipe(prompt, num_frames=args.frames, guidance_scale=args.guidance, temperature=args.temperature,
                      top_k=args.top_k, top_p=args.top_p, generator=generator, num_videos_per_prompt=args.num_videos,
                      speculative=args.speculative, window_rule=args.window_rule).frames  # (B, T, H, W, 3)
    path = save_video(args.output, frames[0] if len(frames) == 1 else video_grid(frames), fps=args.fps)
    print(f"wrote {path} ({frames.shape[0]} x {frames.shape[1]} frames of {frames.shape[2]}x{frames.shape[3]})")
    return 0


def find_annotation(video: Path) -> Path | None:
    """The annotation JSON of a dataset video: ``DIR/annotations/<id>.json`` for ``DIR/videos/<id>.mkv``,
    or the same path with a ``.json`` suffix; ``None`` when neither exists."""
    for candidate in (video.parent.parent / "annotations" / f"{video.stem}.json", video.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def simulator_frames(annotation_path: Path, num_frames: int) -> Any:
    """Re-simulate the episode of an annotation for ``num_frames`` frames -> uint8 ``(T, H, W, 3)``."""
    from worldmodel.datasets import simulate

    annotation = json.loads(annotation_path.read_text(encoding="utf-8"))
    keys = ("scenario", "split", "seed", "height", "fps")
    missing = [k for k in keys if k not in annotation]
    if missing:
        raise ValueError(f"annotation {annotation_path} lacks {', '.join(missing)}: cannot re-simulate the episode")
    episode = simulate(annotation["scenario"], annotation["split"], annotation["seed"], frames=num_frames,
                       size=annotation["height"], fps=annotation["fps"])
    return episode.frames


def run_rollout(args: argparse.Namespace) -> int:
    """Handler of ``worldmodel rollout``."""
    from worldmodel.pipelines.export import save_video
    from worldmodel.pipelines.physics_rollout import PhysicsRolloutPipeline
    from worldmodel.video import read_video, side_by_side

    _check_args(args)
    if args.prompt is not None and not args.prompt.strip():
        raise ValueError("--prompt is empty: describe the video in words, or leave --prompt out for an "
                         "unconditional rollout")
    annotation = find_annotation(args.input) if args.compare_sim else None
    if args.compare_sim and annotation is None:
        raise ValueError(f"--compare-sim needs the annotation of {args.input}: looked for "
                         f"{args.input.parent.parent / 'annotations' / (args.input.stem + '.json')} and "
                         f"{args.input.with_suffix('.json')}")
    frames = read_video(args.input)  # (T, H, W, 3)
    if not 1 <= args.context_frames <= len(frames):
        raise ValueError(f"--context-frames must be between 1 and the {len(frames)} frames of {args.input}, "
                         f"got {args.context_frames}")
    pipe, generator = _setup(args, PhysicsRolloutPipeline)
    if args.batch_invariant:
        prediction = _batch_invariant(pipe, args.prompt, args, frames[:args.context_frames])
    else:
        prediction = pipe(frames[:args.context_frames], num_frames=args.frames, prompt=args.prompt,
                          guidance_scale=args.guidance, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, generator=generator, speculative=args.speculative,
                          window_rule=args.window_rule).frames[0]
    video = prediction
    if annotation is not None:
        video = side_by_side(prediction, simulator_frames(annotation, len(prediction)))
    path = save_video(args.output, video, fps=args.fps)
    what = "prediction | simulator" if annotation is not None else "prediction"
    print(f"wrote {path} ({what}, {len(prediction)} frames, the first {args.context_frames} from {args.input})")
    return 0
