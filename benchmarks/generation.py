"""Generation speed: KV cache vs recomputation, speculative vs plain decoding, seconds per clip.

    python benchmarks/generation.py [--quick] [--threads 2] [--clock wall|cpu]

Uses the packaged default checkpoint (``worldmodel/assets/default``) when it is complete, else randomly
initialised models of ``configs/tokenizer-tiny.yaml`` / ``configs/worldmodel-tiny.yaml`` (the JSON says
which). Every ratio compares two runs of the same model in the same process. Writes
``benchmarks/results/generation.json``.

- ``kv_cache_speedup``: tokens/s of KV-cached decoding over recomputing the whole sequence at every step,
  for one clip with guidance (the pipeline default: conditional and unconditional rows in one batch of 2);
  greedy, identical tokens checked. Goal >= 5x. ``*_unguided``: the same with one row.
- ``speculative_speedup``: greedy speculative decoding with the draft model over greedy plain decoding,
  identical tokens checked. Goal >= 2x. It depends on how often the draft agrees with the target: an
  untrained pair agrees rarely, so this figure means something only for a trained target/draft pair.
- ``frame_copy_*``: the same with :class:`FrameCopyDraft` (propose the previous latent frame's code, 8 at a
  time; costs nothing); ``frame_copy_oracle_acceptance_on_episodes``: how often its proposal is the true
  code on simulated episodes tokenized by the pipeline's tokenizer (what a perfect target would accept);
  ``frame_copy_speedup_replay_target``: its speedup when the target costs the real model's forward but
  predicts the episodes' true codes (:class:`ReplayTarget`): what a target that fits the data would gain.
- ``seconds_per_clip``: one 17-frame clip at the model's size, text to video with guidance, decoded.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Any

import torch
from machine import machine_name, write_results

from configs import config_kwargs
from worldmodel.pipelines import DEFAULT_CHECKPOINT, CheckpointError, TextToVideoPipeline, check_checkpoint
from worldmodel.pipelines.sampling import GuidedModel, SamplingParams, generate_tokens
from worldmodel.pipelines.speculative import FrameCopyDraft, speculative_generate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "generation.json"
PROMPT = "a red ball falls and bounces on the floor"


def build_pipeline() -> tuple[TextToVideoPipeline, str]:
    """The packaged default pipeline, or random-init tiny models when it is not there."""
    try:
        check_checkpoint(DEFAULT_CHECKPOINT)
        return TextToVideoPipeline.from_checkpoint(), f"packaged default ({DEFAULT_CHECKPOINT.name})"
    except CheckpointError:
        pass
    from worldmodel.model import WorldModel
    from worldmodel.tokenizers import VideoTokenizer

    torch.manual_seed(0)
    tokenizer = VideoTokenizer(**config_kwargs("tokenizer-tiny.yaml", "temporal_compression", VideoTokenizer))
    world_kwargs = config_kwargs("worldmodel-tiny.yaml", "latent_frames", WorldModel)
    world_kwargs["codebook_size"] = tokenizer.codebook_size
    world = WorldModel(**world_kwargs)
    draft = WorldModel(**draft_kwargs(world_kwargs))
    pipe = TextToVideoPipeline(tokenizer=tokenizer, world_model=world, draft_model=draft)
    sources = [f"configs/{n}" if (ROOT / "configs" / n).is_file() else f"{n} missing: class defaults"
               for n in ("tokenizer-tiny.yaml", "worldmodel-tiny.yaml")]
    return pipe, f"random init (untrained) of {' + '.join(sources)}; draft = 1 dense layer"


def draft_kwargs(world_kwargs: dict) -> dict:
    """A draft: the target's config with one dense layer."""
    return {**world_kwargs, "n_layers": 1, "n_dense_layers": 1}


def episode_sequences(pipe: TextToVideoPipeline, latent: int, episodes: int = 10) -> torch.Tensor:
    """``[BOS, codes...]`` rows ``(N, 1 + t*h*w)`` of simulated test episodes tokenized by the pipeline."""
    from worldmodel.datasets import SCENARIOS, simulate

    height, _ = pipe.frame_size
    frames = pipe.tokenizer.num_frames(latent)
    video = torch.stack([torch.from_numpy(simulate(SCENARIOS[i % len(SCENARIOS)], "test_id", i, frames=frames,
                                                   size=height).frames) for i in range(episodes)])
    codes = pipe.tokenizer.encode(video).flatten(1)  # (N, t*h*w)
    return torch.cat([torch.full((episodes, 1), pipe.world_model.bos_token_id), codes], dim=1)


class ReplayTarget:
    """A target with the real model's cost whose predictions are a recorded episode's true codes (an oracle).

    Each call runs the real model (same work, same cache) and then returns one-hot logits of the next true
    codes, so decoding reproduces the episode and speculative acceptance follows the data's own repetition.
    """

    def __init__(self, lm: GuidedModel, sequence: torch.Tensor, vocab_size: int) -> None:
        self.lm, self.sequence, self.vocab_size = lm, sequence, vocab_size  # sequence (1, S)

    def new_cache(self, batch_size: int) -> Any:
        """The real model's cache."""
        return self.lm.new_cache(batch_size)

    def __call__(self, input_ids: torch.Tensor, cache: Any) -> torch.Tensor:
        """Logits ``(1, N, V)``: 0 on the true next code, -inf elsewhere."""
        start = cache.length if cache is not None else 0
        self.lm(input_ids, cache)
        following = self.sequence[:, start + 1:start + 1 + input_ids.shape[1]]  # (1, N)
        logits = torch.full((*following.shape, self.vocab_size), float("-inf"))
        return logits.scatter_(-1, following[..., None], 0.0)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _row(name: str, value: float, unit: str, goal: float | None = None, higher_is_better: bool = True) -> dict:
    """One entry of the results JSON."""
    return {"name": name, "value": value, "unit": unit, "goal": goal, "higher_is_better": higher_is_better}


def _timed(clock: Any, repeats: int, fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Best time (wall or this process's CPU time, ``--clock``) of ``repeats`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = clock()
        out = fn(*args, **kwargs)
        best = min(best, clock() - start)
    return best, out


def _guided(pipe: TextToVideoPipeline, model: Any, guidance: float) -> GuidedModel:
    return GuidedModel(model, pipe._text_context(model, [PROMPT], guidance), guidance)


def main() -> None:
    """Run the measurements, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer tokens, one repeat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall time, or this process's CPU time (with --threads 1: robust to other load)")
    args = parser.parse_args()
    timed = functools.partial(_timed, CLOCKS[args.clock])
    torch.set_num_threads(args.threads)
    pipe, source = build_pipeline()
    pipe.set_progress_bar_config(disable=True)
    config = pipe.world_model.config
    per_frame = config.latent_height * config.latent_width
    latent = 2 if args.quick else config.latent_frames
    num_tokens = latent * per_frame  # a whole clip's codes (the first frames only with --quick)
    repeats = 1 if args.quick else 3
    prefix = torch.tensor([[pipe.world_model.bos_token_id]])
    greedy = SamplingParams(temperature=0)
    results = []

    with torch.no_grad():
        for label, guidance in (("", 3.0), ("_unguided", 1.0)):  # the pipeline default (2 rows), then 1 row
            target = _guided(pipe, pipe.world_model, guidance)
            cached_s, cached = timed(repeats, generate_tokens, target, prefix, num_tokens, greedy)
            uncached_s, uncached = timed(repeats, generate_tokens, target, prefix, num_tokens, greedy, use_cache=False)
            if not torch.equal(cached, uncached):
                raise RuntimeError("KV-cached and recomputed greedy decoding disagree")
            results += [
                _row(f"tokens_per_s_kv_cache{label}", num_tokens / cached_s, "tokens/s"),
                _row(f"tokens_per_s_no_cache{label}", num_tokens / uncached_s, "tokens/s"),
                _row(f"kv_cache_speedup{label}", uncached_s / cached_s, "x", goal=5.0),
            ]
            if label:
                continue
            if pipe.draft_model is not None:
                draft = _guided(pipe, pipe.draft_model, guidance)
                spec_s, (spec, stats) = timed(repeats, speculative_generate, target, draft, prefix, num_tokens,
                                              greedy, 4)
                if not torch.equal(spec, cached):
                    raise RuntimeError("greedy speculative decoding differs from greedy plain decoding")
                results += [
                    _row("speculative_speedup", cached_s / spec_s, "x", goal=2.0),
                    _row("speculative_acceptance_rate", stats.acceptance_rate, "fraction"),
                ]
            copy = FrameCopyDraft(per_frame, config.codebook_size)
            episodes = episode_sequences(pipe, latent)
            proposals = copy(episodes[:, :-1], None).argmax(-1)  # FrameCopyDraft's guess for every true code
            oracle_rate = float((proposals == episodes[:, 1:]).float().mean())
            replay_plain_s = replay_spec_s = 0.0
            for episode in episodes[:3]:
                replay = ReplayTarget(target, episode[None], config.codebook_size)
                plain_s, plain = timed(1, generate_tokens, replay, prefix, num_tokens, greedy)
                fast_s, (fast, _) = timed(1, speculative_generate, replay, copy, prefix, num_tokens, greedy, 8)
                if not (torch.equal(plain, fast) and torch.equal(plain[0], episode[1:])):
                    raise RuntimeError("replayed decoding did not reproduce the episode")
                replay_plain_s, replay_spec_s = replay_plain_s + plain_s, replay_spec_s + fast_s
            copy_s, (copied, copy_stats) = timed(repeats, speculative_generate, target, copy, prefix, num_tokens,
                                                  greedy, 8)
            if not torch.equal(copied, cached):
                raise RuntimeError("greedy frame-copy speculative decoding differs from greedy plain decoding")
            results += [
                _row("frame_copy_speculative_speedup", cached_s / copy_s, "x", goal=2.0),
                _row("frame_copy_acceptance_rate", copy_stats.acceptance_rate, "fraction"),
                _row("frame_copy_oracle_acceptance_on_episodes", oracle_rate, "fraction"),
                _row("frame_copy_speedup_replay_target", replay_plain_s / replay_spec_s, "x"),
            ]

    clip_s, _ = timed(repeats, pipe, PROMPT, num_frames=pipe.tokenizer.num_frames(latent), guidance_scale=3.0,
                       generator=torch.Generator().manual_seed(0))
    height, width = pipe.frame_size
    frames = pipe.tokenizer.num_frames(latent)
    results.append(_row(f"seconds_per_clip_{frames}x{height}x{width}", clip_s, "s", higher_is_better=False))

    print(f"checkpoint: {source}; {num_tokens} tokens per clip; {args.threads} threads; {args.clock} clock")
    print(f"{'name':<40} {'value':>10}  unit       goal")
    for r in results:
        print(f"{r['name']:<40} {r['value']:>10.3f}  {r['unit']:<10} {r['goal'] if r['goal'] else '-'}")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine_name(), "threads": args.threads, "clock": args.clock, "checkpoint": source,
                  "tokens_per_clip": num_tokens, "results": results}

        write_results(RESULTS, report)
        print(f"wrote {RESULTS}")
    print(json.dumps({r["name"]: round(r["value"], 3) for r in results}))


if __name__ == "__main__":
    main()
