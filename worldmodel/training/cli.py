"""``worldmodel train`` (presets or LightningCLI YAMLs), ``worldmodel tokenize`` and ``worldmodel export``."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

TRAIN_HELP = """\
usage: worldmodel train --preset NAME [--videos DIR] [--captions FILE] [--out DIR] [--max-minutes M] [--trainer.* ...]
       worldmodel train --config YAML [LightningCLI flags ...]

Train a video tokenizer and a world model.

presets (--preset NAME; `worldmodel train --preset NAME --help` lists their options):
  tiny       a 3.6 M-parameter tokenizer and a 3.2 M-parameter MoE world model; 17 frames of 64x64 at 10 fps.
             With --videos DIR it trains on any folder of videos (mp4, webm, avi, mkv, mov; nested folders;
             any size, frame rate and length; captions optional) and --out DIR ends as a pipeline folder
             for `worldmodel generate/rollout --checkpoint DIR`. Without --videos it reproduces the shipped
             default on simulated physics episodes (hours).
  small      the object-permanence redesign: an FSQ-4096 tokenizer (foreground-weighted loss, 32x32 crops) and a
             4.5 M-parameter world model that also describes clips and answers questions (`worldmodel
             describe/ask`); each training stage fits 150 minutes on 2 CPU cores and warm-starts from its last run.

related commands:
  worldmodel tokenize --tokenizer DIR --videos DIR --out DIR   encode videos into a token cache
  worldmodel export CKPT OUT                                   a Lightning .ckpt to a save_pretrained folder

YAML route: `worldmodel train --config configs/tokenizer-tiny.yaml [--trainer.max_steps=100 ...]` runs
LightningCLI fit; `--ckpt_path last` resumes. The full LightningCLI help: `worldmodel train --lightning-help`.

examples:
  worldmodel train --preset tiny --videos my_clips/ --out models/mine --max-minutes 10
  worldmodel generate "a red ball falls" --checkpoint models/mine -o ball.mp4
"""


def run_lightning_cli(args: list[str]) -> None:
    """Run ``LightningCLI`` ``fit`` with subclass mode for model and data, on the given arguments.

    A ``--ckpt_path`` that is not a weights-only checkpoint is refused in one sentence (nothing in it runs).
    """
    import pickle

    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        LightningCLI(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            args=["fit", *args],  # sys.argv stays intact so that DDP can re-launch this same command
        )
    except pickle.UnpicklingError:
        ckpt = next((a.split("=", 1)[1] for a in args if a.startswith("--ckpt_path=")), None)
        if ckpt is None and "--ckpt_path" in args[:-1]:
            ckpt = args[args.index("--ckpt_path") + 1]
        raise ValueError(f"--ckpt_path {ckpt}: not a weights-only checkpoint (it holds pickled objects); "
                         "refused without running it") from None


def _train(args: argparse.Namespace) -> int:
    rest = args.lightning_args
    if "--preset" in rest or any(a.startswith("--preset=") for a in rest):
        return _preset(rest)
    if rest in ([], ["-h"], ["--help"]):
        print(TRAIN_HELP, file=sys.stdout if rest else sys.stderr)
        return 0 if rest else 2
    if rest == ["--lightning-help"]:
        run_lightning_cli(["--help"])
        return 0
    run_lightning_cli(rest)
    return 0


def _minutes(text: str) -> float:
    value = float(text)
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"must be a positive number of minutes, got {text}")
    return value


def _preset(argv: list[str]) -> int:
    from worldmodel.training.preset import PRESETS, STAGES, VIDEO_STAGES

    parser = argparse.ArgumentParser(
        prog="worldmodel train --preset",
        description="Train a preset on a folder of your videos (--videos) or on simulated physics episodes; "
                    "--trainer.* flags go to every training stage.")
    parser.add_argument("--preset", dest="name", required=True, choices=sorted(PRESETS), help="the preset to train")
    parser.add_argument("--videos", type=Path, default=None,
                        help="folder of videos (searched recursively); without it: simulated physics episodes")
    parser.add_argument("--captions", type=Path, default=None,
                        help="JSON lines {\"video\": path relative to --videos, \"caption\": text} (default: "
                             "captions.jsonl in the folder, .txt sidecars, else unconditional)")
    parser.add_argument("--out", "--export", dest="out", type=Path, default=None,
                        help="the pipeline folder to write (default: outputs/pipeline-NAME[-FOLDER]); never the "
                             "packaged default unless named")
    parser.add_argument("--max-minutes", type=_minutes, default=None, help="wall-time cap of each training stage")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"], help="trainer accelerator")
    parser.add_argument("--workers", type=int, default=2, help="data workers (default 2)")
    parser.add_argument("--stages", default=None,
                        help=f"comma-separated subset of the stages (with --videos: {','.join(VIDEO_STAGES)}; "
                             f"without: {','.join(STAGES)})")
    args, trainer_args = parser.parse_known_args(argv)
    unknown = [a for a in trainer_args if not a.startswith("--trainer.")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)} (only --trainer.* flags pass to the stages)")
    if args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    stages = tuple(s for s in args.stages.split(",") if s) if args.stages else None
    if args.videos is not None:
        from worldmodel.training.user_videos import train_on_videos

        train_on_videos(args.videos, args.out, preset_name=args.name, captions=args.captions,
                        max_minutes=args.max_minutes, accelerator=args.accelerator, workers=args.workers,
                        stages=stages or VIDEO_STAGES, trainer_args=tuple(trainer_args))
        return 0
    if args.captions is not None:
        parser.error("--captions needs --videos (the simulated episodes have their own captions)")
    from worldmodel.training.preset import train_preset

    train_preset(args.out or Path("outputs") / f"pipeline-{args.name}", accelerator=args.accelerator,
                 workers=args.workers, preset=PRESETS[args.name](), stages=stages or STAGES,
                 trainer_args=tuple(trainer_args), max_minutes=args.max_minutes)
    return 0


def _tokenize(args: argparse.Namespace) -> int:
    from worldmodel.io import check_writable_dir
    from worldmodel.pretrained import load_pretrained
    from worldmodel.tokenizers import VideoTokenizer
    from worldmodel.tokenizers.cache import encode_dataset, encode_videos

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be 1 or more, got {args.batch_size}")
    check_writable_dir(args.out, "--out")
    if not args.videos.is_dir():
        raise FileNotFoundError(f"--videos {args.videos}: no such folder of videos")
    tokenizer = load_pretrained(VideoTokenizer, args.tokenizer)
    if (args.videos / "manifest.jsonl").is_file():
        out = encode_dataset(tokenizer, args.videos, args.out, batch_size=args.batch_size)
    else:
        out = encode_videos(tokenizer, args.videos, args.out, frames=args.frames, size=args.size, fps=args.fps,
                            captions=args.captions, batch_size=args.batch_size)
    print(f"wrote the token cache {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from worldmodel.io import check_writable_dir
    from worldmodel.training.export import export_checkpoint

    check_writable_dir(args.out, "OUT")
    kind, out = export_checkpoint(args.checkpoint, args.out)
    print(f"wrote the {kind} of {args.checkpoint} to {out} (save_pretrained)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train``, ``tokenize`` and ``export`` sub-commands."""
    parser = subparsers.add_parser(
        "train",
        help="train on your videos (--preset NAME --videos DIR) or from a LightningCLI YAML (--config)",
        add_help=False,
        prefix_chars="+",  # every dash-flag goes to the preset or to LightningCLI untouched
    )
    parser.add_argument("lightning_args", nargs=argparse.REMAINDER, help="--preset ... or --config ...")
    parser.set_defaults(func=_train, interrupt_hint="checkpoints written so far are kept: rerun the same command to "
                                                    "resume (presets skip finished stages; YAML runs take "
                                                    "--ckpt_path last)")

    tokenize = subparsers.add_parser(
        "tokenize", help="encode videos into a token cache for world-model training",
        description="Encode a folder of videos (any sizes and lengths: clips are cut and resized) or a dataset "
                    "folder (manifest.jsonl) with a trained tokenizer into a token cache.")
    tokenize.add_argument("--tokenizer", required=True, type=Path, help="save_pretrained folder of a VideoTokenizer")
    tokenize.add_argument("--videos", required=True, type=Path, help="folder of videos, or a dataset folder")
    tokenize.add_argument("--out", required=True, type=Path, help="token cache folder to write")
    tokenize.add_argument("--captions", type=Path, default=None, help="captions JSON lines (as for train)")
    tokenize.add_argument("--frames", type=int, default=17, help="clip length in frames (default 17)")
    tokenize.add_argument("--size", type=int, default=64, help="clip height and width in pixels (default 64)")
    tokenize.add_argument("--fps", type=float, default=10.0, help="clip frame rate (default 10)")
    tokenize.add_argument("--batch-size", type=int, default=16, help="clips per encoder call (default 16)")
    tokenize.set_defaults(func=_tokenize)

    export = subparsers.add_parser(
        "export", help="export a Lightning checkpoint to a save_pretrained folder",
        description="Export the tokenizer or world model of a Lightning .ckpt (loaded weights-only: a checkpoint "
                    "holding pickled objects is refused) to a save_pretrained folder.")
    export.add_argument("checkpoint", type=Path, help="Lightning checkpoint (.ckpt)")
    export.add_argument("out", type=Path, help="folder to write (replaced atomically)")
    export.set_defaults(func=_export)
