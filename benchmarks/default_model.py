"""The shipped default, scored on held-out simulator episodes: physics, permanence, text adherence, FVD.

    python benchmarks/default_model.py [--episodes 100] [--prompts 200] [--fvd-clips 16] [--threads 2] [--quick]

- Physics rollouts (first 5 frames given, 17 frames in all) on ``test_id`` and ``test_ood`` episodes
  (scenarios in turn): PhyWorld velocity error (world units/s) and the physics score of the model, of the
  copy-last-frame and constant-velocity baselines, of the tokenizer's reconstruction of the true episode
  (what a model predicting every code right would score: the tokenizer's floor), and the tracker floor (the
  tracker's error on the simulator's own renders); velocity error is also split before / after each ball's first
  bounce or collision (constant velocity is exact before it).
- Object permanence (:mod:`worldmodel.evaluation.permanence`): share of checked rollout frames, and of
  rollouts, whose balls are exactly the true balls, per split and per scenario, for the model, the
  baselines and the tokenizer's reconstruction. Goals on test_id: >= 0.95 of frames, >= 0.80 of videos.
- Text adherence of videos generated from held-out captions: strict (every attribute the prompt names holds
  and every checked frame shows exactly the caption's balls; goal >= 0.90) and the mean share of checks
  passed; permanence of the generated videos against the caption's episode (goals as for rollouts).
- Long rollouts (``--long-frames``, default 33 and 65 frames: two and four times the training length, the pipeline
  slides its window of latent frames) on ``test_id``: permanence and velocity error of the model (window rule
  ``reencode``, the default; ``model_shift`` rows: the kept codes as they are) and of constant velocity.
- Every prediction (model, baselines, reconstructions) is scored from a lossless file.
- FVD / KVD (Kinetics I3D) of generated clips against simulator clips; needs ``worldmodel evaluate
  fetch-i3d`` once. Compare FVD only at equal N: the standard protocol uses 2048 clips per side.
- Seconds per generated 17x64x64 clip.

Writes ``benchmarks/results/default_model.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_name, write_results

from worldmodel.datasets.storage import generate_dataset, read_manifest
from worldmodel.demo import CONTEXT_FRAMES, adherence_summary, write_rollouts, write_text_to_video
from worldmodel.evaluation.report import evaluate_physics
from worldmodel.pipelines import PhysicsRolloutPipeline, TextToVideoPipeline
from worldmodel.video import read_video

RESULTS = Path(__file__).parent / "results" / "default_model.json"


def _row(name: str, value: float | None, unit: str, goal: float | None = None, higher: bool = False) -> dict:
    return {"name": name, "value": value, "unit": unit, "goal": goal, "higher_is_better": higher}


def write_reconstructions(tokenizer: torch.nn.Module, data: Path, out: Path) -> Path:
    """Encode and decode every episode of ``data`` with the tokenizer (lossless .mkv in ``out``): the best a world
    model that predicted every code exactly could score."""
    from worldmodel.datasets.storage import read_manifest
    from worldmodel.video import to_uint8, write_video

    for record in read_manifest(data):
        truth = read_video(data / record["video"])
        with torch.no_grad():
            recon = to_uint8(tokenizer.decode(tokenizer.encode(torch.from_numpy(truth)[None])))[0].numpy()
        write_video(out / f"{record['id']}.mkv", recon, fps=record["fps"])
    return out


def long_rollout_rows(rollout: PhysicsRolloutPipeline, work: Path, frames: int, episodes: int,
                      rules: tuple[str, ...] = ("reencode", "shift")) -> list[dict]:
    """Rollouts of ``frames`` frames (past the training length: the pipeline slides its window) from the first
    frames of ``test_id`` episodes: permanence and velocity error of the model under each window rule (the first,
    the pipeline's default, names the ``model`` rows; the others ``model_RULE``) and of constant velocity."""
    data = work / "data"
    generate_dataset(data, episodes, 0, "test_id", frames=frames)
    predictions = {}
    for i, rule in enumerate(rules):
        preds, _ = write_rollouts(rollout, data, work / f"pred-{rule}", num_frames=frames, window_rule=rule)
        predictions["model" if i == 0 else f"model_{rule}"] = preds["model"]
        predictions.setdefault("constant_velocity", preds["constant_velocity"])
    rows = []
    for kind, folder in predictions.items():
        report = evaluate_physics(folder, data, work / "reports" / kind, context_frames=CONTEXT_FRAMES)
        kept = report["permanence"]
        rows.append(_row(f"long_{frames}_{kind}_velocity_error", report["summary"].get("velocity_error"), "units/s"))
        rows.append(_row(f"long_{frames}_{kind}_frame_permanence", kept["frame_permanence"], "fraction",
                         higher=True))
        rows.append(_row(f"long_{frames}_{kind}_video_permanence", kept["video_permanence"], "fraction",
                         higher=True))
    return rows


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default: the packaged default)")
    parser.add_argument("--episodes", type=int, default=100, help="rollout episodes per split")
    parser.add_argument("--prompts", type=int, default=200, help="text-to-video prompts")
    parser.add_argument("--fvd-clips", type=int, default=16, help="clips per side for FVD (0: skip)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--long-episodes", type=int, default=20,
                        help="test_id episodes per length for rollouts longer than the training clips (0: skip)")
    parser.add_argument("--long-frames", type=int, nargs="*", default=[33, 65],
                        help="lengths of the long rollouts (1 + 4k frames; a sliding window beyond 17)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 episodes, 2 prompts, no FVD")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--only-long", action="store_true",
                        help="run only the long rollouts and replace their rows in the existing results file")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.prompts, args.fvd_clips, args.long_episodes = 2, 2, 0, 1
    torch.set_num_threads(args.threads)
    t2v = TextToVideoPipeline.from_checkpoint(args.checkpoint)
    rollout = PhysicsRolloutPipeline(**t2v.components)
    if args.only_long:
        with tempfile.TemporaryDirectory() as tmp:
            rows = [row for frames in args.long_frames
                    for row in long_rollout_rows(rollout, Path(tmp) / str(frames), frames, args.long_episodes)]
        old = json.loads(args.out.read_text()) if args.out.is_file() else {"results": []}
        kept = [r for r in old["results"] if not r["name"].startswith("long_")]
        for row in rows:
            print(f"{row['name']:48} {row['value']} {row['unit']}")
        write_results(args.out, {**old, "machine": machine_name(), "results": kept + rows})
        return
    results, table = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        errors: dict[str, float] = {}
        for split in ("test_id", "test_ood"):
            data = work / "data" / split
            generate_dataset(data, args.episodes, 0, split)
            preds, _ = write_rollouts(rollout, data, work / "pred" / split)
            preds["tokenizer_reconstruction"] = write_reconstructions(rollout.tokenizer, data, work / "recon" / split)
            for kind, folder in preds.items():
                report = evaluate_physics(folder, data, work / "reports" / split / kind, context_frames=CONTEXT_FRAMES)
                velocity = report["summary"].get("velocity_error")
                errors[f"{split}/{kind}"] = velocity
                results.append(_row(f"{split}_{kind}_velocity_error", velocity, "units/s"))
                for part in ("before", "after"):  # before / after each ball's first bounce or collision
                    results.append(_row(f"{split}_{kind}_velocity_error_{part}_event",
                                        report["summary"].get(f"velocity_error_{part}"), "units/s"))
                results.append(_row(f"{split}_{kind}_physics_score", report["score"], "score", higher=True))
                kept = report["permanence"]
                model_id = kind == "model" and split == "test_id"
                results.append(_row(f"{split}_{kind}_frame_permanence", kept["frame_permanence"], "fraction",
                                    0.95 if model_id else None, True))
                results.append(_row(f"{split}_{kind}_video_permanence", kept["video_permanence"], "fraction",
                                    0.80 if model_id else None, True))
                if kind == "model":
                    for scenario, figures in report["summary"]["per_scenario"].items():
                        results.append(_row(f"{split}_model_frame_permanence_{scenario}",
                                            figures["frame_permanence"], "fraction", higher=True))
                        results.append(_row(f"{split}_model_velocity_error_{scenario}",
                                            figures["velocity_error"], "units/s"))
                table.append((split, kind, velocity, report["score"], kept["frame_permanence"],
                              kept["video_permanence"]))
            floor = report["tracker_floor"]["velocity"]
            results.append(_row(f"{split}_tracker_floor_velocity_error", floor, "units/s"))
            table.append((split, "tracker floor (simulator renders)", floor, None, None, None))
            errors[f"{split}/floor"] = floor
        id_err, ood_err = errors["test_id/model"], errors["test_ood/model"]
        results.append(_row("id_velocity_error_over_tracker_floor", id_err / errors["test_id/floor"], "x", 2.0))
        results.append(_row("ood_over_id_velocity_error", ood_err / id_err, "x", 5.0))
        for split in ("test_id", "test_ood"):
            model = errors[f"{split}/model"]
            results.append(_row(f"{split}_velocity_error_over_constant_velocity",
                                model / errors[f"{split}/constant_velocity"], "x", 1.0))
            results.append(_row(f"{split}_velocity_error_over_copy_last", model / errors[f"{split}/copy_last"], "x",
                                1.0))
            results.append(_row(f"{split}_velocity_error_over_tokenizer_reconstruction",
                                model / errors[f"{split}/tokenizer_reconstruction"], "x", 2.0))

        for frames in args.long_frames if args.long_episodes else []:
            results += long_rollout_rows(rollout, work / "long" / str(frames), frames, args.long_episodes)

        prompts = work / "data" / "prompts"
        generate_dataset(prompts, max(args.prompts, args.fvd_clips), 7, "test_id")
        records = read_manifest(prompts)
        start = time.perf_counter()
        videos, adherence = write_text_to_video(t2v, records[: args.prompts], prompts, work / "t2v")
        seconds = (time.perf_counter() - start) / max(1, len(videos))
        summary = adherence_summary(adherence)
        results.append(_row("text_adherence_strict", summary["strict"], "fraction", 0.9, True))
        results.append(_row("text_adherence_mean_checks", summary["mean_checks"], "fraction", None, True))
        checked = sum(a["permanence"]["frames_checked"] for a in adherence)
        passed = sum(a["permanence"]["frames_passed"] for a in adherence)
        verdicts = [a["permanence"]["video_passed"] for a in adherence if a["permanence"]["video_passed"] is not None]
        results.append(_row("text_to_video_frame_permanence", passed / checked if checked else None, "fraction",
                            0.95, True))
        results.append(_row("text_to_video_video_permanence", float(np.mean(verdicts)) if verdicts else None,
                            "fraction", 0.80, True))
        results.append(_row("seconds_per_clip_17x64x64", seconds, "s"))
        if args.fvd_clips:
            from worldmodel.evaluation.fvd import video_distances

            fake, _ = write_text_to_video(t2v, records[: args.fvd_clips], prompts, work / "fvd", seed=100)
            real = np.stack([read_video(prompts / r["video"]) for r in records[: args.fvd_clips]])
            dist = video_distances(real, np.stack(fake), progress=True)
            results.append(_row(f"fvd_{args.fvd_clips}_clips", dist["fvd"], "FVD"))
            results.append(_row(f"kvd_{args.fvd_clips}_clips", dist["kvd"], "KVD"))
    payload = {"machine": machine_name(),
               "threads": args.threads, "episodes_per_split": args.episodes, "prompts": args.prompts,
               "context_frames": CONTEXT_FRAMES, "results": results}
    def fmt(value: float | None, width: int) -> str:
        return " " * width if value is None else f"{value:{width}.3f}"

    print(f"{'split':9} {'predictor':36} {'velocity err (units/s)':>22} {'score':>7} {'perm fr':>8} {'perm vid':>8}")
    for split, kind, velocity, score, frames, videos in table:
        print(f"{split:9} {kind:36} {fmt(velocity, 22)} {fmt(score, 7)} {fmt(frames, 8)} {fmt(videos, 8)}")
    for row in results:
        if row["goal"] is not None or row["name"].startswith(("text_", "seconds", "fvd", "kvd")):
            print(f"{row['name']:48} {row['value']} {row['unit']} (goal {row['goal']})")
    write_results(args.out, payload)


if __name__ == "__main__":
    main()
