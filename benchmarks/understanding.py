"""Video understanding on held-out simulator episodes: descriptions per attribute, answers per question type.

    python benchmarks/understanding.py [--checkpoint DIR] [--episodes 200] [--context-frames K] [--quick]

``DIR`` is a pipeline folder whose world model was trained with text output (default: the packaged
``worldmodel/assets/default``; a checkpoint without text output is refused with one sentence). For the ``test_id``
and ``test_ood`` splits (``--episodes`` episodes each, ``simulate(scenario, split, seed)`` with the scenarios in turn,
at the checkpoint's frame count and size) it reports:

- ``description/<attribute>``: share of episodes whose description (:meth:`VideoToTextPipeline.describe`) gets the
  attribute right: count, colours, sizes, motion, gravity, events (``attribute_accuracy(parse_description(pred),
  target_description(annotation))``).
- ``question/<type>``: share of the template questions of that type (every instance ``questions_for`` lists)
  answered exactly; predictive types are asked from the first ``--context-frames`` frames only (default: the
  frames of the latent frames the training showed, ``1 + tc * (2 - 1)``).
- ``majority/<type>``: the same share for the majority answer of the type on ``train`` episodes (as many).
- ``goals``: on test_id, descriptive types >= 0.95 each; predictive types >= 0.85 and >= 0.25 above the majority.

Writes ``benchmarks/results/understanding.json`` (``--quick``, 5 episodes per split, writes nothing unless ``--out``
is given).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_name, write_results  # noqa: E402

from worldmodel.datasets import SCENARIOS, simulate  # noqa: E402
from worldmodel.datasets.understanding_data import DEFAULT_CONTEXT_LATENT_FRAMES, context_video_frames  # noqa: E402
from worldmodel.understanding import attribute_accuracy, parse_description, questions_for, target_description  # noqa
from worldmodel.understanding.questions import DESCRIPTIVE, PREDICTIVE, render_question  # noqa: E402

SPLITS = ("test_id", "test_ood")
DESCRIPTIVE_GOAL, PREDICTIVE_GOAL, ABOVE_MAJORITY = 0.95, 0.85, 0.25


def episode(split: str, index: int, frames: int, size: int) -> Any:
    """Episode ``index`` of a split: scenarios in turn, seed ``index``."""
    return simulate(SCENARIOS[index % len(SCENARIOS)], split, index, frames=frames, size=size)


def majority_answers(count: int, frames: int, size: int, context_frames: int) -> dict[str, str]:
    """The most frequent answer per question type over ``count`` train episodes."""
    answers: dict[str, Counter] = defaultdict(Counter)
    for i in range(count):
        for question, reply in questions_for(episode("train", i, frames, size).annotation, context_frames):
            answers[question.type][reply] += 1
    return {kind: counter.most_common(1)[0][0] for kind, counter in answers.items()}


def evaluate_split(pipe: Any, split: str, count: int, context_frames: int, majority: dict[str, str]) -> dict:
    """Per-attribute description accuracy, per-type answer accuracy and majority accuracy on one split."""
    frames, size = pipe.trained_frames, pipe.frame_size[0]
    attributes: dict[str, list[bool]] = defaultdict(list)
    correct: dict[str, list[bool]] = defaultdict(list)
    baseline: dict[str, list[bool]] = defaultdict(list)
    start = time.perf_counter()
    for i in range(count):
        ep = episode(split, i, frames, size)
        described = pipe.describe(ep.frames).text
        for name, ok in attribute_accuracy(parse_description(described), target_description(ep.annotation)).items():
            attributes[name].append(ok)
        for question, reply in questions_for(ep.annotation, context_frames):
            context = context_frames if question.predictive else None
            got = pipe.ask(ep.frames, render_question(question), context_frames=context).text
            correct[question.type].append(got == reply)
            baseline[question.type].append(majority.get(question.type) == reply)
    row: dict[str, Any] = {"split": split, "episodes": count, "seconds": round(time.perf_counter() - start, 1)}
    row.update({f"description/{k}": round(sum(v) / len(v), 4) for k, v in attributes.items()})
    for kind in (*DESCRIPTIVE, *PREDICTIVE):
        if correct[kind]:
            row[f"question/{kind}"] = round(sum(correct[kind]) / len(correct[kind]), 4)
            row[f"majority/{kind}"] = round(sum(baseline[kind]) / len(baseline[kind]), 4)
            row[f"questions/{kind}"] = len(correct[kind])
    return row


def goals(row: dict[str, Any]) -> dict[str, bool]:
    """The issue's goals on one split's row (met or not) per question type."""
    met = {}
    for kind in DESCRIPTIVE:
        if f"question/{kind}" in row:
            met[kind] = row[f"question/{kind}"] >= DESCRIPTIVE_GOAL
    for kind in PREDICTIVE:
        if f"question/{kind}" in row:
            score = row[f"question/{kind}"]
            met[kind] = score >= PREDICTIVE_GOAL and score >= row[f"majority/{kind}"] + ABOVE_MAJORITY
    return met


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the packaged one)")
    parser.add_argument("--episodes", type=int, default=200, help="held-out episodes per split")
    parser.add_argument("--context-frames", type=int, default=None, help="frames predictive questions see")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="5 episodes per split; writes nothing without --out")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path (default: benchmarks/results/understanding.json)")
    args = parser.parse_args(argv)
    from worldmodel.pipelines.understanding_cli import check_text_checkpoint
    from worldmodel.pipelines.video_to_text import VideoToTextPipeline

    try:
        checkpoint = check_text_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    count = 5 if args.quick else args.episodes
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe = VideoToTextPipeline.from_checkpoint(checkpoint).to(device)
    tc = pipe.tokenizer.config.temporal_compression
    context = args.context_frames or context_video_frames(DEFAULT_CONTEXT_LATENT_FRAMES, tc)
    majority = majority_answers(count, pipe.trained_frames, pipe.frame_size[0], context)
    rows = []
    for split in SPLITS:
        row = evaluate_split(pipe, split, count, context, majority)
        row["goals_met"] = goals(row) if split == "test_id" else None
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items() if k != "goals_met"), flush=True)
    met = rows[0]["goals_met"]
    print(f"goals on test_id: {sum(met.values())} of {len(met)} question types met "
          f"({', '.join(k for k, v in met.items() if not v) or 'all'} short)")
    if args.quick and args.out is None:
        return 0
    payload = {"benchmark": "understanding", "machine": machine_name(), "device": device, "checkpoint": str(checkpoint),
               "episodes_per_split": count, "context_frames": context, "majority_answers": majority,
               "goals": {"descriptive": DESCRIPTIVE_GOAL, "predictive": PREDICTIVE_GOAL,
                         "predictive_above_majority": ABOVE_MAJORITY}, "results": rows}
    out = args.out or ROOT / "benchmarks" / "results" / "understanding.json"
    write_results(out, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
