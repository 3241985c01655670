"""Evaluation speed and the baseline table: I3D clips/s, physics episodes/s, copy-last / constant velocity / truth.

    python benchmarks/evaluation.py [--quick] [--episodes 40]

Writes ``benchmarks/results/evaluation.json``. Rows:

- ``fvd_black_vs_white``: FVD of 8 all-black vs 8 all-white videos (30 frames, 64x64), all 16 clips
  through the I3D; goal: the TF reference 151.39, met within a tolerance of 0.5. Skipped with ``--quick``.
- ``i3d_clips_per_s``: I3D feature extraction (16-frame 64x64 clips resized to 224, batches of 8) on
  the CPU threads given; ``i3d_channels_last_speedup``: the same run over the default memory format
  (the baseline measured in this run).
- ``physics_episodes_per_s``: :func:`episode_metrics` (tracking the prediction and the reference,
  all figures) per episode, 17x64x64.
- ``score_<split>_<baseline>``, ``ade_...``, ``velocity_error_...``: the physics score and figures
  of ``ground_truth``, ``copy_last`` and ``constant_velocity`` (5 context frames) over the same
  episodes of every scenario in ``test_id`` and ``test_ood``; ``tracker_floor_*``: the tracker's error
  on the simulator's renders of those episodes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_name, write_results

from worldmodel.datasets import SCENARIOS, simulate
from worldmodel.evaluation.baselines import baseline_rollout
from worldmodel.evaluation.fvd import frechet_distance, i3d_features, preprocess
from worldmodel.evaluation.i3d_weights import fetch_i3d, load_i3d
from worldmodel.evaluation.physics import episode_metrics, tracker_floor

RESULTS = Path(__file__).resolve().parent / "results" / "evaluation.json"
CONTEXT = 5
FVD_REFERENCE = 151.39
FVD_TOLERANCE = 0.5  # the reference is given to 2 decimals; float64 vs TF float32 features differ below this


def row(name: str, value: float | None, unit: str, goal: float | None = None, higher: bool | None = True,
        tolerance: float | None = None) -> dict:
    """One result row in the shared benchmark format; a reference match has ``tolerance`` (met when
    ``|value - goal| <= tolerance``) and no direction."""
    out = {"name": name, "value": value, "unit": unit, "goal": goal, "higher_is_better": higher}
    if tolerance is not None:
        out["tolerance"] = tolerance
    return out


def i3d_rate(model: torch.nn.Module, clips: np.ndarray, memory_format: torch.memory_format) -> float:
    """Clips/s of I3D features (preprocessing included) for uint8 clips in batches of 8."""
    model = model.to(memory_format=memory_format)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in torch.from_numpy(clips).split(8):
            model(preprocess(batch).contiguous(memory_format=memory_format))
    return len(clips) / (time.perf_counter() - start)


def baseline_table(episodes: int) -> tuple[list[dict], float]:
    """Rows of the baseline table on test_id and test_ood, and the physics-evaluation rate (episodes/s)."""
    rows, timed, seconds = [], 0, 0.0
    for split in ("test_id", "test_ood"):
        eps = [simulate(SCENARIOS[i % len(SCENARIOS)], split, i // len(SCENARIOS)) for i in range(episodes)]
        floors = [tracker_floor(ep.frames, ep.annotation) for ep in eps]
        for kind in ("ground_truth", "copy_last", "constant_velocity"):
            metrics = []
            for ep in eps:
                truth = kind == "ground_truth"
                pred = ep.frames if truth else baseline_rollout(kind, ep.frames, CONTEXT, ep.annotation)
                start = time.perf_counter()
                metrics.append(episode_metrics(pred, ep.annotation, ep.frames, CONTEXT))
                seconds += time.perf_counter() - start
                timed += 1
            for key, unit, higher in (("score", "score in [0, 1]", True), ("ade", "frame widths", False),
                                      ("velocity_error", "units/s", False)):
                values = [m[key] for m in metrics if m[key] is not None]
                rows.append(row(f"{key}_{split}_{kind}", float(np.mean(values)) if values else None, unit,
                                higher=higher))
        for key, unit in (("center_px", "px"), ("velocity", "units/s")):
            values = [f[key] for f in floors if f[key] is not None]
            rows.append(row(f"tracker_floor_{key}_{split}", float(np.mean(values)), unit, higher=False))
    return rows, timed / seconds


def main() -> None:
    """Run the benchmark, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few clips and episodes, no FVD reference")
    parser.add_argument("--episodes", type=int, default=40, help="episodes per split for the baseline table")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_i3d(fetch_i3d())
    results = []
    if not args.quick:
        black, white = np.zeros((8, 30, 64, 64, 3), np.uint8), np.full((8, 30, 64, 64, 3), 255, np.uint8)
        fvd = frechet_distance(i3d_features(black, model), i3d_features(white, model))
        results.append(row("fvd_black_vs_white", fvd, "FVD", goal=FVD_REFERENCE, higher=None,
                           tolerance=FVD_TOLERANCE))
    clips = np.random.default_rng(0).integers(0, 256, (4 if args.quick else 16, 16, 64, 64, 3), dtype=np.uint8)
    slow = i3d_rate(model, clips, torch.contiguous_format)
    fast = i3d_rate(model, clips, torch.channels_last_3d)
    results += [row("i3d_clips_per_s", fast, "clips/s (16x64x64 -> 224)"),
                row("i3d_channels_last_speedup", fast / slow, "x over contiguous")]
    table, rate = baseline_table(5 if args.quick else args.episodes)
    results.append(row("physics_episodes_per_s", rate, "episodes/s (17x64x64)"))
    results += table
    print(f"{'name':44s} {'value':>12s}  unit (goal)")
    for r in results:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        goal = f" (goal {r['goal']})" if r["goal"] is not None else ""
        print(f"{r['name']:44s} {value:>12s}  {r['unit']}{goal}")
    write_results(RESULTS, {"machine": machine_name(), "threads": torch.get_num_threads(), "results": results})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
