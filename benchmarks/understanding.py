"""Video understanding on held-out simulator episodes: descriptions per attribute, answers per question type.

    python benchmarks/understanding.py [--checkpoint DIR] [--episodes 200] [--context-frames K] [--imagine N]
        [--workers 2] [--quick]

``DIR`` is a pipeline folder whose world model was trained with text output (default: the packaged
``worldmodel/assets/default``; a checkpoint without text output is refused with one sentence). For the ``test_id``
and ``test_ood`` splits (``--episodes`` episodes each, ``simulate(scenario, split, seed)`` with the scenarios in turn,
at the checkpoint's frame count and size) it reports:

- ``description/<attribute>``: share of episodes whose description (:meth:`VideoToTextPipeline.describe`) gets the
  attribute right: count, colours, sizes, motion, gravity, events (``attribute_accuracy(parse_description(pred),
  target_description(annotation))``).
- ``question/<type>``: share of the template questions of that type (every instance ``questions_for`` lists)
  answered exactly; predictive types are asked from the first ``--context-frames`` frames only (default: the
  frames of the latent frames the training showed, ``1 + tc * (2 - 1)``); with ``--imagine N`` the model first
  imagines N continuations of those frames and reads its answer off them (:meth:`VideoToTextPipeline.ask`).
- ``majority/<type>``: the same share for the majority answer of the type on ``train`` episodes (as many).
- Goals on test_id: descriptive types >= 0.95 each; predictive types >= 0.85 and >= 0.25 above the majority.

Prints a table and writes ``benchmarks/results/understanding.json`` (result rows ``{name, value, unit, goal,
higher_is_better}`` named ``SPLIT_description_ATTRIBUTE``, ``SPLIT_question_TYPE``, ``SPLIT_majority_TYPE``; the raw
per-split counts under ``splits``; ``--quick``, 5 episodes per split, writes nothing unless ``--out``
is given).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
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


def evaluate_split(pipe: Any, split: str, count: int, context_frames: int, majority: dict[str, str],
                   imagine: int = 0) -> dict:
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
            got = pipe.ask(ep.frames, render_question(question), context_frames=context,
                           imagine=imagine if question.predictive else 0).text
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


def evaluate_split_in_worker(checkpoint: Path, split: str, count: int, context_frames: int,
                             majority: dict[str, str], threads: int, imagine: int = 0) -> dict:
    """`evaluate_split` in a worker process of its own (`threads` torch threads, its own pipeline on the CPU)."""
    from worldmodel.pipelines.video_to_text import VideoToTextPipeline

    torch.set_num_threads(threads)
    pipe = VideoToTextPipeline.from_checkpoint(checkpoint)
    pipe.set_progress_bar_config(disable=True)
    return evaluate_split(pipe, split, count, context_frames, majority, imagine)


def result_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """One split's figures as result rows ``{name, value, unit, goal, higher_is_better}``: description attributes,
    question types (goals on test_id only: descriptive >= 0.95, predictive >= 0.85), their majority baselines and,
    for predictive types, the margin over the majority (goal >= 0.25)."""
    split, test_id = row["split"], row["split"] == "test_id"

    def result(name: str, value: float, unit: str = "fraction", goal: float | None = None,
               higher: bool = True) -> dict[str, Any]:
        return {"name": f"{split}_{name}", "value": value, "unit": unit, "goal": goal if test_id else None,
                "higher_is_better": higher}

    rows = [result(key.replace("/", "_"), value) for key, value in row.items() if key.startswith("description/")]
    for kind in (*DESCRIPTIVE, *PREDICTIVE):
        if f"question/{kind}" not in row:
            continue
        score, majority = row[f"question/{kind}"], row[f"majority/{kind}"]
        goal = DESCRIPTIVE_GOAL if kind in DESCRIPTIVE else PREDICTIVE_GOAL
        rows.append(result(f"question_{kind}", score, goal=goal))
        rows.append(result(f"majority_{kind}", majority))
        if kind in PREDICTIVE:
            rows.append(result(f"question_{kind}_over_majority", round(score - majority, 4), "points",
                               ABOVE_MAJORITY))
    rows.append(result("seconds", row["seconds"], "s", higher=False))
    return rows


def goals_met(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Each result row that has a goal: whether its value meets it."""
    return {r["name"]: r["value"] >= r["goal"] for r in rows if r["goal"] is not None}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: the packaged one)")
    parser.add_argument("--episodes", type=int, default=200, help="held-out episodes per split")
    parser.add_argument("--context-frames", type=int, default=None, help="frames predictive questions see")
    parser.add_argument("--imagine", type=int, default=0,
                        help="predictive questions: imagine N continuations of the context first (0: off)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--workers", type=int, default=1,
                        help="splits scored in parallel processes (2: one per split, each with --threads threads)")
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
    pipe.set_progress_bar_config(disable=True)
    tc = pipe.tokenizer.config.temporal_compression
    context = args.context_frames or context_video_frames(DEFAULT_CONTEXT_LATENT_FRAMES, tc)
    majority = majority_answers(count, pipe.trained_frames, pipe.frame_size[0], context)
    if args.workers > 1 and device == "cpu":
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(args.workers, len(SPLITS)), mp_context=spawn) as pool:
            jobs = [pool.submit(evaluate_split_in_worker, checkpoint, split, count, context, majority,
                                torch.get_num_threads(), args.imagine) for split in SPLITS]
            splits = [job.result() for job in jobs]
    else:
        splits = [evaluate_split(pipe, split, count, context, majority, args.imagine) for split in SPLITS]
    results = [r for row in splits for r in result_rows(row)]
    print(f"{'name':<48} {'value':>8}  goal")
    for r in results:
        print(f"{r['name']:<48} {r['value']:>8}  {'' if r['goal'] is None else r['goal']}")
    met = goals_met(results)
    print(f"goals on test_id: {sum(met.values())} of {len(met)} met "
          f"({', '.join(k for k, v in met.items() if not v) or 'none'} short)")
    if args.quick and args.out is None:
        return 0
    payload = {"benchmark": "understanding", "machine": machine_name(), "threads": torch.get_num_threads(),
               "workers": args.workers,
               "device": device, "checkpoint": str(checkpoint), "episodes_per_split": count,
               "context_frames": context, "imagine": args.imagine, "majority_answers": majority, "splits": splits,
               "results": results}
    out = args.out or ROOT / "benchmarks" / "results" / "understanding.json"
    write_results(out, payload)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
