"""Serving: throughput and latency of ``worldmodel serve`` at 1, 4 and 16 clients, and quantised decoding.

Part 1 starts ``worldmodel serve`` (the packaged default, or ``--checkpoint``) as a subprocess on a free loopback
port and sends the same text-to-video requests (fixed prompts and seeds) one at a time and then from 1, 4 and 16
concurrent clients (closed loop: each client sends its next request when the last one is answered). Goals:
clips/s at 16 clients >= 3x the one-at-a-time figure; p95 latency at 16 clients <= 2x the decode time of the
batches it ran in (the server reports each batch's decode time in its answer).

Part 2 decodes in-process with :class:`~worldmodel.serving.batched.BatchedDecoder` for float32 and each torchao
mode, in the same run: decode tokens/s of one request and of a batch of 8, and the quality cost on held-out
simulator episodes (split ``val``): validation cross-entropy of the world model on their codes (tokenized by the
checkpoint's tokenizer, captions as text) and object permanence of rollouts from their first 5 frames. Goal for
int8: >= 1.5x float32 tokens/s with <= 1 % cross-entropy change.

    python benchmarks/serving.py            # writes benchmarks/results/serving.json
    python benchmarks/serving.py --quick    # smoke run: fewer requests and episodes
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "serving"))
from machine import ROOT, machine_name, write_results  # noqa: E402
from serving_toys import start_server, stop_server  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
PROMPTS = ["a red ball is dropped and bounces twice", "a blue ball is thrown to the right and falls in a parabola",
           "a green ball glides left without gravity", "two balls collide head-on and fly apart"]


def _row(name: str, value: float, unit: str, goal: float | None = None, higher_is_better: bool = True) -> dict:
    return {"name": name, "value": float(value), "unit": unit, "goal": goal, "higher_is_better": higher_is_better}


def _requests(n: int, num_frames: int) -> list[dict[str, Any]]:
    """The fixed request set: prompts and seeds in turn."""
    return [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": i, "num_frames": num_frames} for i in range(n)]


async def _load(url: str, bodies: list[dict[str, Any]], clients: int) -> tuple[float, list[float], list[float]]:
    """Serve ``bodies`` from ``clients`` closed-loop clients: (wall seconds, latencies, batch decode seconds)."""
    queue = list(bodies)
    latencies: list[float] = []
    decodes: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop(0)
            start = time.perf_counter()
            answer = await http.post("/api/text-to-video", json=body)
            answer.raise_for_status()
            latencies.append(time.perf_counter() - start)
            decodes.append(answer.json()["batch"]["decode_seconds"])

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return time.perf_counter() - start, latencies, decodes


def serving_rows(args: argparse.Namespace) -> list[dict]:
    """Part 1: one server process, the same requests one at a time and at 1, 4, 16 clients."""
    extra = ["--checkpoint", str(args.checkpoint)] if args.checkpoint else []
    server, url = start_server(*extra, "--max-batch", "16", "--max-queue", "256", threads=args.threads)
    rows: list[dict] = []
    try:
        asyncio.run(_load(url, _requests(2, args.frames), 1))  # warm-up
        bodies = _requests(args.requests, args.frames)
        base_wall, base_lat, _ = asyncio.run(_load(url, bodies[: max(4, args.requests // 4)], 1))
        base = len(base_lat) / base_wall
        rows.append(_row("one at a time: clips/s", base, "clips/s"))
        for clients in (1, 4, 16):
            wall, lat, decodes = asyncio.run(_load(url, bodies, clients))
            p50, p95 = np.percentile(lat, 50), np.percentile(lat, 95)
            goal = 3 * base if clients == 16 else None
            rows += [_row(f"{clients} clients: clips/s", len(lat) / wall, "clips/s", goal),
                     _row(f"{clients} clients: speed-up over one at a time", len(lat) / wall / base, "x",
                          3.0 if clients == 16 else None),
                     _row(f"{clients} clients: p50 latency", p50, "s", higher_is_better=False),
                     _row(f"{clients} clients: p95 latency", p95, "s", higher_is_better=False)]
            if clients == 16:
                decode = statistics.median(decodes)
                rows += [_row("16 clients: median batch decode time", decode, "s", higher_is_better=False),
                         _row("16 clients: p95 latency / batch decode time", p95 / decode, "x", 2.0, False)]
    finally:
        stop_server(server)
    return rows


def validation_episodes(pipe: Any, count: int) -> list[Any]:
    """Held-out simulator episodes (split ``val``) of the model's training length, scenarios in turn."""
    from worldmodel.datasets import SCENARIOS, simulate

    height, _ = pipe.frame_size
    return [simulate(SCENARIOS[i % len(SCENARIOS)], "val", i, frames=pipe.trained_frames, size=height)
            for i in range(count)]


@torch.no_grad()
def cross_entropy(pipe: Any, episodes: list[Any]) -> float:
    """Mean next-code cross-entropy (nats) of the world model on the episodes' codes, captions as text."""
    from worldmodel.tokenizers.text import ByteTokenizer

    wm = pipe.world_model
    video = torch.stack([torch.from_numpy(e.frames) for e in episodes])
    codes = pipe.tokenizer.encode(video).flatten(1)  # (N, t*h*w)
    ids = torch.cat([torch.full((len(episodes), 1), wm.bos_token_id), codes], dim=1)
    text_ids, mask = ByteTokenizer(wm.config.max_text_len).encode([e.captions[0] for e in episodes])
    logits = wm(ids[:, :-1], text=wm.encode_text(text_ids, mask), router_stats=False).logits
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten()).item()


def rollout_quality(decoder: Any, episodes: list[Any], context: int = 5) -> dict[str, float | None]:
    """Rollouts from the first ``context`` frames (seed i): share of predicted frames that keep every ball and the
    mean PhyWorld velocity error (world units/s) against the simulator."""
    from worldmodel.evaluation.permanence import permanence, summarize
    from worldmodel.evaluation.physics import episode_metrics
    from worldmodel.serving.batched import ClipRequest

    requests = [ClipRequest("", i, len(e.frames), context=e.frames[:context]) for i, e in enumerate(episodes)]
    videos = decoder(requests)
    pairs = list(zip(videos, episodes, strict=True))
    kept = summarize([permanence(v, e.annotation, start_frame=context) for v, e in pairs])["frame_permanence"]
    errors = [episode_metrics(v, e.annotation, e.frames, context)["velocity_error"] for v, e in pairs]
    errors = [x for x in errors if x is not None]
    return {"rollout frame permanence": kept,
            "rollout velocity error": float(np.mean(errors)) if errors else None}


def decode_speed(decoder: Any, batch: int, num_frames: int) -> float:
    """Decoded tokens per second for a batch of ``batch`` text-to-video requests (best of two)."""
    from worldmodel.serving.batched import ClipRequest

    requests = [ClipRequest(PROMPTS[i % len(PROMPTS)], i, num_frames, 3.0) for i in range(batch)]
    wm = decoder.world_model
    tokens = batch * decoder.pipeline.latent_frames(num_frames) * wm.config.latent_height * wm.config.latent_width
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        decoder(requests)
        best = min(best, time.perf_counter() - start)
    return tokens / best


def quantisation_rows(args: argparse.Namespace) -> list[dict]:
    """Part 2: decode speed and quality per quantisation mode against float32, in this process."""
    from worldmodel.pipelines import TextToVideoPipeline
    from worldmodel.serving.batched import BatchedDecoder
    from worldmodel.serving.quantize import QUANTIZE_MODES, quantize_pipeline

    base = TextToVideoPipeline.from_checkpoint(args.checkpoint)
    episodes = validation_episodes(base, args.episodes)
    rows: list[dict] = []
    reference: dict[str, float] = {}
    for mode in (None, *QUANTIZE_MODES):
        pipe = quantize_pipeline(copy.deepcopy(base), mode)
        decoder = BatchedDecoder(pipe)
        name = mode or "float32"
        figures = {"tokens/s, 1 request": decode_speed(decoder, 1, args.frames),
                   "tokens/s, batch of 8": decode_speed(decoder, 8, args.frames),
                   "validation cross-entropy": cross_entropy(pipe, episodes)}
        if not args.quick:
            figures.update(rollout_quality(decoder, episodes))
        for key, value in figures.items():
            if value is None:
                continue
            kind = next((k for k in ("tokens", "entropy", "velocity") if k in key), "permanence")
            unit = {"tokens": "tokens/s", "entropy": "nats", "velocity": "units/s", "permanence": "share"}[kind]
            rows.append(_row(f"{name}: {key}", value, unit, higher_is_better=kind in ("tokens", "permanence")))
            if mode is None:
                reference[key] = value
            elif key.startswith("tokens/s"):
                rows.append(_row(f"{name}: {key} / float32", value / reference[key], "x",
                                 1.5 if mode == "int8" else None))
            elif "entropy" in key:
                rows.append(_row(f"{name}: cross-entropy change", 100 * (value / reference[key] - 1), "%",
                                 1.0 if mode == "int8" else None, False))
    return rows


def main() -> None:
    """Run both parts, print the table, write ``benchmarks/results/serving.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer requests and episodes, no rollouts")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server and of part 2")
    parser.add_argument("--checkpoint", type=Path, default=None, help="pipeline folder (default: packaged)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: 9, quick: 5)")
    parser.add_argument("--only", choices=("serving", "quantisation"), default=None,
                        help="run one part and replace only its rows in the existing results file")
    args = parser.parse_args()
    args.frames = args.frames or (5 if args.quick else 9)
    args.requests = 16 if args.quick else 48
    args.episodes = 4 if args.quick else 20
    torch.set_num_threads(args.threads)
    parts = {"serving": serving_rows, "quantisation": quantisation_rows}
    results = []
    for part, rows in parts.items():
        if args.only in (None, part):
            results += rows(args)
        elif RESULTS.is_file():  # keep the other part's rows from the last full run
            quantised = lambda r: r["name"].split(":")[0] in ("float32", "int8", "int4")  # noqa: E731
            results += [r for r in json.loads(RESULTS.read_text())["results"]
                        if quantised(r) == (part == "quantisation")]
    width = max(len(r["name"]) for r in results)
    print(f"{'measure':<{width}}  {'value':>10}  unit      goal")
    for r in results:
        goal = "" if r["goal"] is None else f"{'>=' if r['higher_is_better'] else '<='} {r['goal']:.3g}"
        print(f"{r['name']:<{width}}  {r['value']:>10.3f}  {r['unit']:<8}  {goal}")
    write_results(RESULTS, {"machine": machine_name(), "threads": args.threads, "frames": args.frames,
                            "checkpoint": str(args.checkpoint or "packaged default"), "results": results})
    print(json.dumps({r["name"]: round(r["value"], 3) for r in results}))


if __name__ == "__main__":
    main()
