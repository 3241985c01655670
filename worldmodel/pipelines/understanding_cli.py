"""``worldmodel describe VIDEO`` and ``worldmodel ask VIDEO QUESTION``: the world model reads a video and writes text.

The text goes to standard output (``--json``: one JSON object with the text and its settings); notes on what was
done to the video (resized, cut) go to standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=Path, help="input video file (other sizes and lengths are resized or cut)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="pipeline folder (save_pretrained) whose world model has text output; default: the "
                             "packaged worldmodel/assets/default")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the text and its settings")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def register(subparsers: Any) -> None:
    """Add ``describe`` and ``ask`` to the ``worldmodel`` command."""
    describe = subparsers.add_parser("describe", help="describe what happens in a video",
                                     description="Describe a video with the world model: its balls (size, colour), "
                                                 "their motion, gravity and the events (bounces, collisions).")
    _add_common(describe)
    describe.set_defaults(func=run_describe)
    ask = subparsers.add_parser("ask", help="answer a question about a video",
                                description="Answer a question about a video with the world model, e.g. 'how many "
                                            "balls are there?' or, from the first frames only (--context-frames), "
                                            "'will the red and blue balls collide?'.")
    _add_common(ask)
    ask.add_argument("question", help="the question, in words")
    ask.add_argument("--context-frames", type=int, default=None,
                     help="let the model see only the first K frames (1 + 4k), to ask what will happen next")
    ask.add_argument("--imagine", type=int, default=0, metavar="N",
                     help="with --context-frames: imagine N continuations of the first frames with the world model "
                          "and answer from them (1: one greedy future; default 0: answer from the frames given)")
    ask.add_argument("--seed", type=int, default=0, help="seed of the sampled futures (--imagine 2 or more)")
    ask.set_defaults(func=run_ask)


def check_text_checkpoint(checkpoint: Path | None) -> Path:
    """The checkpoint folder, refused before loading when its world model has no text output."""
    from worldmodel.pipelines.base import DEFAULT_CHECKPOINT, CheckpointError, check_checkpoint
    from worldmodel.pipelines.video_to_text import NO_UNDERSTANDING

    path = check_checkpoint(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
    try:
        config = json.loads((path / "world_model" / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint folder {path}: world_model/config.json is not valid JSON ({err})") from err
    if not config.get("text_output"):
        raise ValueError(f"{path}: {NO_UNDERSTANDING}")
    return path


def _run(args: argparse.Namespace, question: str | None, context_frames: int | None, imagine: int = 0,
         seed: int = 0) -> int:
    """Load the pipeline, read the video and print the text (and notes on stderr)."""
    from worldmodel.pipelines.cli import check_device
    from worldmodel.pipelines.video_to_text import VideoToTextPipeline

    if question is not None and not question.strip():
        raise ValueError("the question is empty: ask something about the video, e.g. 'how many balls are there?'")
    checkpoint = check_text_checkpoint(args.checkpoint)
    device = check_device(args.device)
    if not args.video.is_file():
        raise FileNotFoundError(f"{args.video}: no such video file")
    pipe = VideoToTextPipeline.from_checkpoint(checkpoint).to(device)
    out = pipe(str(args.video), question, context_frames, imagine, seed)
    for note in out.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"text": out.text, "video": str(args.video), "question": out.question,
                          "template": out.template, "context_frames": context_frames, "imagine": imagine,
                          "seed": seed, "frames_read": out.frames,
                          "checkpoint": str(checkpoint), "device": device, "notes": list(out.notes)}))
    else:
        print(out.text)
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """Handler of ``worldmodel describe``."""
    return _run(args, None, None)


def run_ask(args: argparse.Namespace) -> int:
    """Handler of ``worldmodel ask``."""
    return _run(args, args.question, args.context_frames, args.imagine, args.seed)
