"""Physics data speed: episodes/s generated (1 and 2 workers) and clips/s loaded (decord vs PyAV).

    python benchmarks/data.py [--quick] [--episodes 400]

Writes ``benchmarks/results/data.json``. Every ratio compares two runs of this script on the same machine:

- ``simulate_render_eps_1w`` / ``_2w``: episodes/s of 17x64x64 simulated and rendered on the fly
  (``SimulatedDataset`` through a DataLoader with 0 or 2 worker processes, frames returned to the main
  process as a training loop would get them). Goal: >= 100 episodes/s on 2 cores.
- ``generate_eps_1w`` / ``_2w``: ``generate_dataset`` into a fresh folder (simulate, render, FFV1 encode,
  annotation JSON, manifest), 1 and 2 worker processes.
- ``load_clips_decord`` / ``load_clips_pyav``: ``PhysicsVideoDataset`` items/s with each backend, one process.
- ``*_ratio`` rows: 2 workers over 1, decord over PyAV.
- ``*_per_cpu_s`` rows: the same single-process runs per CPU-second of this process, which does not
  depend on what else the machine runs (two idle cores give about twice that).
- ``simulate_ms`` / ``render_ms`` / ``encode_ms``: where one episode's time goes (single process).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import machine_name, write_results
from torch.utils.data import DataLoader

from worldmodel.datasets import SCENARIOS, PhysicsVideoDataset, SimulatedDataset, generate_dataset
from worldmodel.datasets.palette import PALETTE
from worldmodel.datasets.physics import collate_clips
from worldmodel.datasets.render import render_discs
from worldmodel.datasets.scenarios import sample_scene
from worldmodel.datasets.simulator import run_physics, simulate
from worldmodel.video import write_video

RESULTS = Path(__file__).resolve().parent / "results" / "data.json"
GOAL_EPS = 100.0


def _rates(count: int, wall: float, cpu: float) -> tuple[float, float]:
    """(items per wall-clock second, items per CPU-second of this process)."""
    return count / wall, count / max(cpu, 1e-9)


def simulated_rate(episodes: int, workers: int) -> tuple[float, float]:
    """Episodes/s of on-the-fly simulation through a DataLoader (batches of 8): wall clock, per CPU-second."""
    dataset = SimulatedDataset(episodes, seed=1)
    loader = DataLoader(dataset, batch_size=8, num_workers=workers, collate_fn=collate_clips)
    wall, cpu = time.perf_counter(), time.process_time()
    count = sum(len(batch["ids"]) for batch in loader)
    return _rates(count, time.perf_counter() - wall, time.process_time() - cpu)


def generate_rate(episodes: int, workers: int) -> tuple[float, float]:
    """Episodes/s of ``generate_dataset`` into a fresh folder: wall clock, per CPU-second of this process."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        generate_dataset(Path(tmp) / "d", episodes, seed=1, split="train", workers=workers)
        return _rates(episodes, time.perf_counter() - wall, time.process_time() - cpu)


def load_rate(root: Path, backend: str, repeats: int) -> tuple[float, float]:
    """Items/s of ``PhysicsVideoDataset`` with one backend in this process: wall clock, per CPU-second."""
    dataset = PhysicsVideoDataset(root, backend=backend, strict=True)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        for i in range(len(dataset)):
            dataset[i]
    return _rates(repeats * len(dataset), time.perf_counter() - wall, time.process_time() - cpu)


def breakdown(episodes: int) -> dict[str, float]:
    """Milliseconds per episode spent in physics, rendering and FFV1 encoding (single process)."""
    totals = {"simulate_ms": 0.0, "render_ms": 0.0, "encode_ms": 0.0}
    ppu = 64 / 10.0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(episodes):
            t0 = time.perf_counter()
            scene = sample_scene(SCENARIOS[i % len(SCENARIOS)], "train", i)
            states, _ = run_physics(scene, 17, 10.0, 20)  # (T, N, 4) world units
            t1 = time.perf_counter()
            radii = np.array([b.radius * ppu for b in scene.balls])
            colors = np.array([PALETTE[b.color] for b in scene.balls])
            frames = render_discs(states[..., :2] * ppu - 0.5, radii, colors, 64, 64)
            t2 = time.perf_counter()
            write_video(Path(tmp) / "v.mkv", frames)
            t3 = time.perf_counter()
            totals["simulate_ms"] += 1e3 * (t1 - t0)
            totals["render_ms"] += 1e3 * (t2 - t1)
            totals["encode_ms"] += 1e3 * (t3 - t2)
    return {name: total / episodes for name, total in totals.items()}


def main() -> None:
    """Run the measurements, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few episodes only (smoke run)")
    parser.add_argument("--episodes", type=int, default=400, help="episodes per generation measurement")
    args = parser.parse_args()
    episodes = 40 if args.quick else args.episodes
    torch.set_num_threads(1)

    rows = []

    def add(name: str, value: float, unit: str, goal: float | None = None, higher: bool = True) -> None:
        rows.append({"name": name, "value": round(value, 3), "unit": unit, "goal": goal, "higher_is_better": higher})

    simulate("uniform", "train", 0)  # warm imports
    (sim1, sim_cpu), (sim2, _) = simulated_rate(episodes, 0), simulated_rate(episodes, 2)
    add("simulate_render_eps_1w", sim1, "episodes/s")
    add("simulate_render_eps_2w", sim2, "episodes/s", GOAL_EPS)
    add("simulate_render_2w_over_1w_ratio", sim2 / sim1, "x")
    add("simulate_render_eps_per_cpu_s", sim_cpu, "episodes/CPU-s")
    (gen1, gen_cpu), (gen2, _) = generate_rate(episodes, 1), generate_rate(episodes, 2)
    add("generate_eps_1w", gen1, "episodes/s")
    add("generate_eps_2w", gen2, "episodes/s", GOAL_EPS)
    add("generate_2w_over_1w_ratio", gen2 / gen1, "x")
    add("generate_eps_per_cpu_s", gen_cpu, "episodes/CPU-s")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "d"
        generate_dataset(root, min(episodes, 100), seed=2, split="train", workers=2)
        repeats = 1 if args.quick else 3
        (dec, dec_cpu), (pyav, pyav_cpu) = load_rate(root, "decord", repeats), load_rate(root, "pyav", repeats)
    add("load_clips_decord", dec, "clips/s")
    add("load_clips_pyav", pyav, "clips/s")
    add("load_decord_over_pyav_ratio", dec / pyav, "x")
    add("load_clips_decord_per_cpu_s", dec_cpu, "clips/CPU-s")
    add("load_clips_pyav_per_cpu_s", pyav_cpu, "clips/CPU-s")
    for name, value in breakdown(min(episodes, 100)).items():
        add(name, value, "ms/episode", higher=False)

    print(f"{'name':34s} {'value':>10s}  unit          goal")
    for r in rows:
        print(f"{r['name']:34s} {r['value']:10.2f}  {r['unit']:12s}  {r['goal'] if r['goal'] is not None else '-'}")
    load = [round(x, 2) for x in os.getloadavg()]  # others' work on a shared machine slows the wall-clock rows
    result = {"machine": machine_name(), "threads": 2, "note": "threads = the most worker processes used",
              "load_average_1_5_15_min": load, "quick": args.quick, "episodes": episodes,
              "frames": 17, "size": 64, "results": rows}
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
