"""Choose a checkpoint's sampling defaults on ``val`` episodes and captions (never on the test splits).

    python scripts/sweep_sampling.py --checkpoint stages/small --episodes 30 --prompts 30 \\
        --t2v 3:1:5 3:1:20 1:1:5 3:0:- --rollout 0:- 1:5

Each ``--t2v GUIDANCE:TEMPERATURE:TOP_K`` setting generates one video per ``val`` caption and scores text-to-video
object permanence and text adherence (strict and mean checks); each ``--rollout TEMPERATURE:TOP_K`` setting rolls
every ``val`` episode forward from its first 5 frames and scores rollout permanence and the velocity error
(``-`` = no top-k; temperature 0 = greedy). Videos are scored in memory or through lossless FFV1, as
``benchmarks/default_model.py`` scores them. Writes a JSON table (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import torch

from worldmodel.datasets.storage import generate_dataset, read_manifest
from worldmodel.demo import CONTEXT_FRAMES, adherence_summary, write_rollouts, write_text_to_video
from worldmodel.evaluation.report import evaluate_physics
from worldmodel.io import write_json_atomic
from worldmodel.pipelines import PhysicsRolloutPipeline, TextToVideoPipeline

VAL_SEED = 11  # the val stream of `worldmodel data generate`, away from the seeds the benchmarks use


def parse_setting(text: str, fields: tuple[str, ...]) -> dict[str, float | int | None]:
    """``"3:1:5"`` -> ``{"guidance_scale": 3.0, "temperature": 1.0, "top_k": 5}`` for ``fields`` in that order."""
    parts = text.split(":")
    expected = f"sampling setting {text!r}: expected {len(fields)} numbers {':'.join(fields)} ('-' for no top-k)"
    if len(parts) != len(fields):
        raise ValueError(expected)
    try:
        return {f: (None if p == "-" else int(p) if f == "top_k" else float(p))
                for f, p in zip(fields, parts, strict=True)}
    except ValueError:
        raise ValueError(expected) from None


def t2v_row(t2v: TextToVideoPipeline, setting: dict, data: Path, records: list[dict], out: Path) -> dict:
    """Text-to-video permanence and adherence of one sampling setting on ``records`` (captions of ``data``)."""
    _, adherence = write_text_to_video(partial(t2v, **setting), records, data, out)
    checked = sum(a["permanence"]["frames_checked"] for a in adherence)
    passed = sum(a["permanence"]["frames_passed"] for a in adherence)
    videos = [a["permanence"]["video_passed"] for a in adherence if a["permanence"]["video_passed"] is not None]
    return {"task": "text_to_video", **setting, **adherence_summary(adherence),
            "frame_permanence": passed / checked if checked else None,
            "video_permanence": sum(videos) / len(videos) if videos else None}


def rollout_row(rollout: PhysicsRolloutPipeline, setting: dict, data: Path, out: Path) -> dict:
    """Rollout permanence and velocity error of one sampling setting on the episodes of ``data``."""
    preds, _ = write_rollouts(partial(rollout, **setting), data, out / "pred")
    report = evaluate_physics(preds["model"], data, out / "report", context_frames=CONTEXT_FRAMES)
    return {"task": "rollout", **setting, "velocity_error": report["summary"].get("velocity_error"),
            "frame_permanence": report["permanence"]["frame_permanence"],
            "video_permanence": report["permanence"]["video_permanence"]}


def main(argv: list[str] | None = None) -> int:
    """Run every setting and write the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default: the packaged one)")
    parser.add_argument("--episodes", type=int, default=30, help="val episodes for the rollout settings")
    parser.add_argument("--prompts", type=int, default=30, help="val captions for the text-to-video settings")
    parser.add_argument("--t2v", nargs="*", default=[], metavar="G:T:K", help="text-to-video settings")
    parser.add_argument("--rollout", nargs="*", default=[], metavar="T:K", help="rollout settings")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("outputs/sampling-sweep.json"))
    args = parser.parse_args(argv)
    try:
        t2v_settings = [parse_setting(s, ("guidance_scale", "temperature", "top_k")) for s in args.t2v]
        rollout_settings = [parse_setting(s, ("temperature", "top_k")) for s in args.rollout]
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    t2v = TextToVideoPipeline.from_checkpoint(args.checkpoint)
    rollout = PhysicsRolloutPipeline(**t2v.components)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "val"
        generate_dataset(data, max(args.episodes, args.prompts), VAL_SEED, "val")
        records = read_manifest(data)
        for i, setting in enumerate(t2v_settings):
            rows.append(t2v_row(t2v, setting, data, records[: args.prompts], work / f"t2v{i}"))
            print(json.dumps(rows[-1]), flush=True)
        episodes = work / "val_rollouts"
        if rollout_settings:
            generate_dataset(episodes, args.episodes, VAL_SEED, "val")
        for i, setting in enumerate(rollout_settings):
            rows.append(rollout_row(rollout, setting, episodes, work / f"rollout{i}"))
            print(json.dumps(rows[-1]), flush=True)
    write_json_atomic(args.out, {"checkpoint": args.checkpoint or "packaged default", "split": "val",
                                 "seed": VAL_SEED, "episodes": args.episodes, "prompts": args.prompts,
                                 "command": "python " + " ".join(sys.argv), "results": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
