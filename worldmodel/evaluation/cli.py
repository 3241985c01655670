"""``worldmodel evaluate``: fetch-i3d, fvd, physics and baseline sub-commands (heavy imports inside handlers)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _fetch_i3d(args: argparse.Namespace) -> int:
    from worldmodel.evaluation.i3d_weights import fetch_i3d

    print(fetch_i3d(args.path, force=args.force))
    return 0


def _video_batches(folder: Path, frames: int | None, batch_size: int):
    """Yield uint8 ``(b, T, H, W, 3)`` batches of the readable videos in ``folder`` (bad files skipped, warned)."""
    import warnings

    import numpy as np

    from worldmodel.video import VIDEO_SUFFIXES, VideoReadError, is_user_file, read_video

    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of videos")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and is_user_file(p))
    if not paths:
        raise ValueError(f"{folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    batch: list[np.ndarray] = []
    for path in paths:
        try:
            clip = read_video(path)
        except VideoReadError as err:
            warnings.warn(f"skipping {err}", stacklevel=2)
            continue
        if frames is not None:
            if len(clip) < frames:
                warnings.warn(f"skipping {path}: {len(clip)} frames, fewer than --frames {frames}", stacklevel=2)
                continue
            clip = clip[:frames]
        if batch and (clip.shape != batch[0].shape or len(batch) == batch_size):
            yield np.stack(batch)
            batch = []
        batch.append(clip)
    if batch:
        yield np.stack(batch)


def _fvd(args: argparse.Namespace) -> int:
    from worldmodel.evaluation.fvd import video_distances
    from worldmodel.io import write_json_atomic

    result = video_distances(_video_batches(Path(args.real), args.frames, args.batch_size),
                             _video_batches(Path(args.fake), args.frames, args.batch_size),
                             batch_size=args.batch_size, device=args.device, progress=True)
    result.update(real=args.real, fake=args.fake, frames=args.frames)
    print(json.dumps(result, indent=2))
    if args.output:
        write_json_atomic(args.output, result)
    return 0


def _physics(args: argparse.Namespace) -> int:
    from worldmodel.evaluation.report import evaluate_physics

    if args.examples < 0:
        raise ValueError(f"--examples must be a count of 0 or more episodes to show, got {args.examples}")
    if args.context_frames < 1:
        raise ValueError(f"--context-frames must be 1 or more, got {args.context_frames}")

    report = evaluate_physics(args.pred, args.reference, args.output, context_frames=args.context_frames,
                              examples=args.examples)
    counts, floor, kept = report["counts"], report["tracker_floor"], report["permanence"]
    frames = "n/a" if kept["frame_permanence"] is None else f"{kept['frame_permanence']:.3f}"
    videos = "n/a" if kept["video_permanence"] is None else f"{kept['video_permanence']:.3f}"
    print(f"score {report['score']:.4f} over {counts['scored']} episodes (missing {counts['missing']}, "
          f"bad {counts['bad']}); object permanence {frames} of frames, {videos} of videos; "
          f"tracker floor {floor['center_px']:.4f} px; report in {args.output}/report.md")
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from worldmodel.datasets.storage import read_manifest
    from worldmodel.evaluation.baselines import baseline_rollout
    from worldmodel.video import VideoReadError, read_video, write_video

    if args.context_frames < 1:
        raise ValueError(f"--context-frames must be 1 or more, got {args.context_frames}")
    reference = Path(args.reference)
    skipped: list[str] = []
    records = read_manifest(reference)
    for record in records:
        path = reference / record["video"]
        try:
            video = read_video(path)
            if len(video) != record["frames"]:
                raise VideoReadError(f"{path}: {len(video)} frames, the manifest lists {record['frames']} (truncated?)")
            annotation = json.loads((reference / record["annotation"]).read_text(encoding="utf-8"))
        except (VideoReadError, OSError, ValueError, KeyError) as err:
            skipped.append(str(err))
            continue
        frames = baseline_rollout(args.kind, video, args.context_frames, annotation)
        write_video(Path(args.output) / f"{record['id']}.mkv", frames, fps=float(annotation["fps"]))
    print(f"wrote {len(records) - len(skipped)} {args.kind} rollouts to {args.output}")
    if skipped:
        print(f"skipped {len(skipped)} episodes:\n  " + "\n  ".join(skipped))
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``worldmodel evaluate ...`` to the top-level parser."""
    evaluate = subparsers.add_parser("evaluate", help="FVD with the Kinetics I3D; physics consistency reports")
    commands = evaluate.add_subparsers(dest="evaluate_command", metavar="SUBCOMMAND", required=True)

    fetch = commands.add_parser("fetch-i3d", help="download and convert the Kinetics-400 I3D weights (safetensors)")
    fetch.add_argument("--path", default=None, help="output file (default: $WORLDMODEL_CACHE or ~/.cache/worldmodel)")
    fetch.add_argument("--force", action="store_true", help="convert again even if the file exists")
    fetch.set_defaults(func=_fetch_i3d)

    fvd = commands.add_parser("fvd", help="FVD and KVD between two folders of videos")
    fvd.add_argument("--real", required=True, help="folder of real videos")
    fvd.add_argument("--fake", required=True, help="folder of generated videos")
    fvd.add_argument("--frames", type=int, default=16, help="frames per clip (first N; shorter files skipped)")
    fvd.add_argument("--batch-size", type=int, default=8)
    fvd.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    fvd.add_argument("-o", "--output", default=None, help="also write the result as JSON here")
    fvd.set_defaults(func=_fvd)

    physics = commands.add_parser("physics", help="physics consistency of predicted videos against a dataset")
    physics.add_argument("--pred", required=True, help="folder of predicted videos named <episode id>.<ext>")
    physics.add_argument("--reference", required=True, help="dataset folder with manifest.jsonl")
    physics.add_argument("-o", "--output", required=True, help="report folder (report.json, report.md)")
    physics.add_argument("--context-frames", type=int, default=5, help="frames given to the model (not scored)")
    physics.add_argument("--examples", type=int, default=4, help="episodes shown with plots and GIFs")
    physics.set_defaults(func=_physics)

    baseline = commands.add_parser("baseline", help="write baseline rollouts (copy_last, constant_velocity)")
    baseline.add_argument("--kind", required=True, choices=("copy_last", "constant_velocity"))
    baseline.add_argument("--reference", required=True, help="dataset folder with manifest.jsonl")
    baseline.add_argument("-o", "--output", required=True, help="folder for <episode id>.mkv rollouts")
    baseline.add_argument("--context-frames", type=int, default=5)
    baseline.set_defaults(func=_baseline)
