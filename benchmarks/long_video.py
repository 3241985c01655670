"""Long-video efficiency: block-sparse attention speed/fidelity and Mixture-of-Depths training cost.

    python benchmarks/long_video.py [--quick] [--threads 2]

Every ratio compares two runs in the same process. Writes ``benchmarks/results/long_video.json`` (not with
``--quick``, a smoke run of a few minutes).

- ``attention_speedup_{4k,16k,64k}``: causal attention forward + backward, block-sparse (plain-PyTorch gather
  path, block 64, top-8 + first + local block) over ``torch.nn.functional.scaled_dot_product_attention(
  is_causal=True)``, B=1, 2 heads, head dim 64, fp32. Goal >= 3x at 16K. ``flex_fwd_speedup_*``: the same
  pattern through ``torch.compile(flex_attention)`` with a BlockMask, forward only (flex has no CPU backward in
  torch 2.14.1), beside ``gather_fwd_speedup_*`` (4K and 16K; compile time excluded).
- ``cosine_trained_b16_top4`` (and ``_b8_top4``, ``_b8_top2``): output cosine (block-sparse vs dense, mean over
  layers/heads/tokens) on the q, k, v of every layer of the dense world model trained by this script on the
  tiny task below (320 tokens); ``kept_key_share_*`` is the share of the causal keys the sparse pattern keeps.
  Goal >= 0.99. ``cosine_synthetic_16k``: the same at 16K tokens on synthetic activations with video-like
  locality (random Fourier features of the (t, h, w) position, 16x16 tokens per frame), no trained model
  of that length exists.
- ``mod_train_speedup``: training speed of the world model with Mixture-of-Depths (rho 0.3 on every layer
  after the first) over the same model without, from the CPU time of the optimiser steps on one thread (the
  machine is shared; ``mod_train_speedup_wall`` is the median wall-clock ratio of paired steps). Goal >= 1.3x.
  ``mod_val_loss_change``: relative change of the validation loss after the same number of steps (predictor
  routing, as used when generating).
  Goal <= 1 %. Tiny task: next-code prediction on 5x8x8 code grids made from simulated physics episodes
  (each 8x8 patch of every 4th frame -> its mean colour, 4 levels per channel = 64 codes), 150 steps of batch 8
  on 512 episodes, validation on 64; the model is configs/worldmodel-tiny.yaml at half width (d_model 128) so
  that both runs fit a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from machine import machine_name

from worldmodel.model.sparse_attention import block_sparse_attention, dense_causal_attention

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "long_video.json"


def _time(fn, reps: int) -> float:
    """Best wall time of ``reps`` calls after one warm-up call (seconds)."""
    fn()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _fwd_bwd(attend, q, k, v):
    """A closure that runs attention forward and backward on fresh leaf copies."""

    def run():
        qq, kk, vv = (t.detach().requires_grad_(True) for t in (q, k, v))
        out = attend(qq, kk, vv)
        out.backward(torch.ones_like(out))

    return run


def local_activations(n: int, heads: int, dim: int, seed: int, sharpness: float = 3.0):
    """Synthetic q, k, v (1, H, N, D) with video-like locality: q . k peaks for nearby (t, h, w) positions."""
    g = torch.Generator().manual_seed(seed)
    side = 16
    idx = torch.arange(n)
    pos = torch.stack([idx // (side * side), idx // side % side, idx % side], dim=-1).float()  # (N, 3)
    scale = torch.tensor([1 / 2.0, 1 / 3.0, 1 / 3.0])  # length scales: 2 frames, 3 cells
    omega = torch.randn(heads, 3, dim, generator=g) * scale[None, :, None]
    phase = torch.rand(heads, 1, dim, generator=g) * 2 * math.pi
    feat = torch.cos(pos[None] @ omega + phase) * math.sqrt(2.0 / dim) * math.sqrt(dim)  # (H, N, D), unit-ish rows
    q = sharpness * feat + 0.5 * torch.randn(heads, n, dim, generator=g)
    k = feat + 0.5 * torch.randn(heads, n, dim, generator=g)
    v = torch.randn(heads, n, dim, generator=g)
    return q[None], k[None], v[None]


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity of the last-dim vectors of ``a`` and ``b``."""
    return F.cosine_similarity(a.flatten(0, -2).double(), b.flatten(0, -2).double(), dim=-1).mean().item()


def attention_results(quick: bool) -> list[dict]:
    """Speed of block-sparse vs SDPA at 4K/16K/64K, plus cosine on synthetic local activations at 16K."""
    block, top_k, heads, dim = 64, 8, 2, 64
    lengths = [4096, 16384] if quick else [4096, 16384, 65536]
    results = []

    def sparse(q, k, v):
        return block_sparse_attention(q, k, v, block, top_k)[0]

    def flex(q, k, v):
        return block_sparse_attention(q, k, v, block, top_k, backend="flex")[0]

    for n in lengths:
        q, k, v = local_activations(n, heads, dim, seed=n)
        reps = 1 if n > 16384 or quick else 2
        t_dense = _time(_fwd_bwd(dense_causal_attention, q, k, v), reps)
        t_sparse = _time(_fwd_bwd(sparse, q, k, v), reps)
        tag = f"{n // 1024}k"
        print(f"attention {tag:>4}: dense {t_dense:8.3f} s  sparse {t_sparse:7.3f} s  x{t_dense / t_sparse:5.2f}")
        results += [
            {"name": f"dense_fwd_bwd_s_{tag}", "value": t_dense, "unit": "s", "goal": None, "higher_is_better": False},
            {"name": f"sparse_fwd_bwd_s_{tag}", "value": t_sparse, "unit": "s", "goal": None,
             "higher_is_better": False},
            {"name": f"attention_speedup_{tag}", "value": t_dense / t_sparse, "unit": "x",
             "goal": 3.0 if n == 16384 else None, "higher_is_better": True},
        ]  # fmt: skip
        if n <= 16384 and not quick:  # flex_attention has no CPU backward in torch 2.14.1: forward only
            with torch.no_grad():
                t_dense_fwd = _time(partial(dense_causal_attention, q, k, v), reps)
                t_gather_fwd = _time(partial(sparse, q, k, v), reps)
                t_flex_fwd = _time(partial(flex, q, k, v), reps)  # the warm-up call compiles
            print(f"attention {tag:>4} forward: dense {t_dense_fwd:7.3f} s  gather x{t_dense_fwd / t_gather_fwd:5.2f}"
                  f"  flex (compiled) x{t_dense_fwd / t_flex_fwd:5.2f}")
            results += [
                {"name": f"gather_fwd_speedup_{tag}", "value": t_dense_fwd / t_gather_fwd, "unit": "x", "goal": None,
                 "higher_is_better": True},
                {"name": f"flex_fwd_speedup_{tag}", "value": t_dense_fwd / t_flex_fwd, "unit": "x", "goal": None,
                 "higher_is_better": True},
            ]  # fmt: skip
        if n == 16384:
            with torch.no_grad():
                cos = cosine(sparse(q, k, v), dense_causal_attention(q, k, v))
            print(f"cosine on synthetic local activations at 16k: {cos:.4f}")
            results.append({"name": "cosine_synthetic_16k", "value": cos, "unit": "cosine", "goal": None,
                            "higher_is_better": True})  # fmt: skip
    return results


def video_codes(episodes: int, split: str, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Code grids (E, 5, 8, 8) in [0, 64) and captions from simulated episodes (see the module docstring)."""
    from worldmodel.datasets import SCENARIOS, simulate

    codes, captions = [], []
    for i in range(episodes):
        episode = simulate(SCENARIOS[i % len(SCENARIOS)], split, seed * 100_000 + i)
        frames = torch.from_numpy(episode.frames[::4]).float()  # (5, 64, 64, 3)
        patches = frames.reshape(5, 8, 8, 8, 8, 3).mean(dim=(2, 4))  # (5, 8, 8, 3) mean colour per patch
        levels = (patches / 64).floor().clamp(max=3).long()  # 4 levels per channel
        codes.append(levels[..., 0] * 16 + levels[..., 1] * 4 + levels[..., 2])
        captions.append(episode.annotation["captions"][0])
    return torch.stack(codes), captions


def _tiny_config(**overrides) -> dict:
    """configs/worldmodel-tiny.yaml's model at half width (fits the shared 2-core box) and 64 codes."""
    tree = yaml.safe_load((ROOT / "configs" / "worldmodel-tiny.yaml").read_text())
    half = {"codebook_size": 64, "d_model": 128, "dense_hidden": 352, "moe_expert_hidden": 64, "kv_lora_rank": 32,
            "text_d_model": 64}  # fmt: skip
    return {**tree["model"]["init_args"]["model_config"], **half, **overrides}


class _Trainer:
    """One world model, its optimiser, and the CPU and wall time of each of its training steps."""

    def __init__(self, config: dict, seed: int):
        from worldmodel.model import WorldModel
        from worldmodel.tokenizers.text import ByteTokenizer

        torch.manual_seed(seed)
        self.model = WorldModel(**config)
        self.text = ByteTokenizer(self.model.config.max_text_len)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def _loss(self, codes: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(cross-entropy, aux loss, mean share of tokens skipping the routed layers or 0)."""
        targets = codes.flatten(1)  # (B, N)
        ids = torch.cat([torch.full_like(targets[:, :1], self.model.bos_token_id), targets[:, :-1]], dim=1)
        out = self.model(ids, self.model.encode_text(*self.text.encode(captions)))
        skipped = [v.item() for key, v in out.stats.items() if key.endswith("mod_skipped_share")]
        ce = F.cross_entropy(out.logits.flatten(0, 1), targets.flatten())
        return ce, out.aux_loss, sum(skipped) / max(1, len(skipped))

    def step(self, codes: torch.Tensor, captions: list[str]) -> None:
        """One timed optimiser step."""
        self.model.train()
        start, start_cpu = time.perf_counter(), time.process_time()
        ce, aux, _ = self._loss(codes, captions)
        self.opt.zero_grad(set_to_none=True)
        (ce + aux).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.model.update_router_biases()
        self.cpu.append(time.process_time() - start_cpu)
        self.wall.append(time.perf_counter() - start)

    @torch.no_grad()
    def val_loss(self, codes: torch.Tensor, captions: list[str], batch: int, topk: bool = False) -> tuple[float, float]:
        """Mean validation cross-entropy and skipped share; Mixture-of-Depths routes by the causal predictor
        (eval mode, as when generating) or, with ``topk``, by the training-time top-k (train mode, no update)."""
        self.model.train(topk)
        runs = [self._loss(codes[i : i + batch], captions[i : i + batch]) for i in range(0, len(codes), batch)]
        self.model.eval()
        return sum(r[0].item() for r in runs) / len(runs), sum(r[2] for r in runs) / len(runs)


def mod_results(quick: bool) -> tuple[list[dict], _Trainer, tuple[torch.Tensor, list[str]]]:
    """Train the tiny world model with and without Mixture-of-Depths in lockstep (same batches, same seed)."""
    steps, batch = (3, 4) if quick else (150, 8)
    train_codes, train_captions = video_codes(32 if quick else 512, "train", 0)
    val = video_codes(8 if quick else 64, "val", 1)
    n_layers = _tiny_config()["n_layers"]
    dense = _Trainer(_tiny_config(), seed=0)
    routed = _Trainer(_tiny_config(mod_layers=list(range(1, n_layers)), mod_rho=0.3), seed=0)
    order = torch.randperm(len(train_codes), generator=torch.Generator().manual_seed(0))
    for step in range(steps + 1):
        pick = order[(step * batch + torch.arange(batch)) % len(order)]
        caps = [train_captions[i] for i in pick]
        for trainer in (dense, routed) if step % 2 == 0 else (routed, dense):  # alternate to share load noise
            trainer.step(train_codes[pick], caps)
    # The first step warms up allocators and is not counted. CPU time (one thread) is robust to the other jobs
    # on a shared machine; the wall-clock figure is the median over steps of the paired ratios.
    speedup = sum(dense.cpu[1:]) / sum(routed.cpu[1:])
    wall = torch.tensor(dense.wall[1:]) / torch.tensor(routed.wall[1:])
    speedup_wall = wall.median().item()
    loss_dense, _ = dense.val_loss(*val, batch)
    loss_routed, skipped = routed.val_loss(*val, batch)
    loss_topk, _ = routed.val_loss(*val, batch, topk=True)
    change = (loss_routed - loss_dense) / loss_dense
    cpu_dense, cpu_routed = sum(dense.cpu[1:]), sum(routed.cpu[1:])
    print(f"training {steps} steps, CPU time: dense {cpu_dense:7.1f} s  MoD rho 0.3 {cpu_routed:7.1f} s"
          f"  x{speedup:5.2f} (wall, median of pairs: x{speedup_wall:5.2f})")
    print(f"validation loss: dense {loss_dense:.4f}  MoD {loss_routed:.4f} (predictor skips {100 * skipped:.0f} %)"
          f"  change {100 * change:+.2f} %; MoD with top-k routing {loss_topk:.4f}")
    results = [
        {"name": "mod_train_speedup", "value": speedup, "unit": "x", "goal": 1.3, "higher_is_better": True},
        {"name": "mod_train_speedup_wall", "value": speedup_wall, "unit": "x", "goal": None, "higher_is_better": True},
        {"name": "mod_val_loss_change", "value": change, "unit": "relative", "goal": 0.01, "higher_is_better": False},
        {"name": "val_loss_dense", "value": loss_dense, "unit": "nats", "goal": None, "higher_is_better": False},
        {"name": "val_loss_mod", "value": loss_routed, "unit": "nats", "goal": None, "higher_is_better": False},
        {"name": "val_loss_mod_topk_routing", "value": loss_topk, "unit": "nats", "goal": None,
         "higher_is_better": False},
        {"name": "mod_predictor_skipped_share", "value": skipped, "unit": "share", "goal": None,
         "higher_is_better": False},
    ]
    return results, dense, val


def trained_cosines(trainer: _Trainer, val: tuple[torch.Tensor, list[str]]) -> list[dict]:
    """Block-sparse vs dense output cosine on the q, k, v of every layer of the trained (dense) world model."""
    model, captured = trainer.model.eval(), []

    def capture(q, k, v, q_offset, scale):
        captured.append((q, k, v, scale))
        return dense_causal_attention(q, k, v, q_offset=q_offset, scale=scale)

    for block in model.blocks:
        block.attn.attention_product = capture
    codes, captions = val
    with torch.no_grad():
        trainer._loss(codes[:8], captions[:8])
    results = []
    for block_size, top_k in [(16, 4), (8, 4), (8, 2)]:
        cos, kept = [], []
        for q, k, v, scale in captured:
            sparse = block_sparse_attention(q, k, v, block_size, top_k, scale=scale)[0]
            cos.append(cosine(sparse, dense_causal_attention(q, k, v, scale=scale)))
        n = captured[0][0].shape[2]
        pos = torch.arange(n)
        kept = (torch.clamp(pos + 1, max=(top_k + 1) * block_size + pos % block_size + 1).float() / (pos + 1)).mean()
        value = sum(cos) / len(cos)
        print(f"cosine on trained activations ({n} tokens, block {block_size}, top {top_k}, "
              f"{100 * kept:.0f} % of the causal keys): {value:.4f}")
        results += [
            {"name": f"cosine_trained_b{block_size}_top{top_k}", "value": value, "unit": "cosine",
             "goal": 0.99 if (block_size, top_k) == (16, 4) else None, "higher_is_better": True},
            {"name": f"kept_key_share_b{block_size}_top{top_k}", "value": kept.item(), "unit": "share",
             "goal": None, "higher_is_better": False},
        ]  # fmt: skip
    return results


def main() -> None:
    """Run the benchmark and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: smaller sizes, fewer steps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = attention_results(args.quick)
    torch.set_num_threads(1)  # training on one thread: CPU time then measures work, not waiting for cores
    mod, dense_trainer, val = mod_results(args.quick)
    results += mod + trained_cosines(dense_trainer, val)
    print(f"{'name':<32} {'value':>10}  {'unit':<9} goal")
    for r in results:
        print(f"{r['name']:<32} {r['value']:>10.4f}  {r['unit']:<9} {'-' if r['goal'] is None else r['goal']}")
    if args.quick:  # a smoke run never overwrites the committed figures
        return
    out = {"machine": machine_name(),
           "threads": args.threads, "quick": args.quick, "results": results}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from worldmodel.io import write_json_atomic

    write_json_atomic(RESULTS, out)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
