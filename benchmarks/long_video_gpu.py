"""Block-sparse attention on a CUDA GPU: the compiled flex_attention BlockMask path vs fused dense attention.

    python benchmarks/long_video_gpu.py [--quick]

Needs a CUDA device (the CPU figures are ``benchmarks/long_video.py``). Causal attention forward + backward at 4K,
16K and 64K tokens, B=1, 8 heads, head dim 64, bf16, on the synthetic video-like activations of
``long_video.py``: ``torch.nn.functional.scaled_dot_product_attention(is_causal=True)`` (PyTorch picks its flash
kernel) against the same block-sparse pattern as the CPU benchmark (block 128 = flex_attention's tile, top-8 + the
first and the local block) through ``torch.compile(flex_attention)`` with a BlockMask (``flex``) and through the
plain-PyTorch gather path (``gather``). Each time is the median of 10 timed calls after warm-up (compilation
excluded), synchronised. ``*_kernel_ms`` sums the GPU time of the kernels of one call (torch.profiler): the work
without the host-side overhead of building the selection and the BlockMask in eager PyTorch, which dominates the
wall time below 64K. ``flex_vs_gather_max_abs_diff`` checks that both sparse paths compute the same function.
Writes ``benchmarks/results/long_video_gpu.json`` (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from long_video import _fwd_bwd, cosine, local_activations

from worldmodel.model.sparse_attention import block_sparse_attention, dense_causal_attention

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "long_video_gpu.json"
BLOCK, TOP_K, HEADS, DIM = 128, 8, 8, 64


def _time_cuda(fn, reps: int = 10) -> float:
    """Median wall time (seconds) of ``reps`` synchronised calls after two warm-up calls."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _kernel_ms(fn) -> float:
    """GPU kernel time (ms) of one call, summed over its kernels by the profiler: the work without host overhead."""
    fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(e.self_device_time_total for e in prof.key_averages()) / 1e3


def main() -> None:
    """Run the GPU attention benchmark and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4K and 16K only")
    args = parser.parse_args()
    if not torch.cuda.is_available():  # `make bench` runs every script: skip, keeping the committed GPU figures
        print("benchmarks/long_video_gpu.py: no CUDA GPU here, skipped (the CPU figures are benchmarks/long_video.py)")
        return

    def flex(q, k, v):
        return block_sparse_attention(q, k, v, BLOCK, TOP_K, backend="flex")[0]

    def gather(q, k, v):
        return block_sparse_attention(q, k, v, BLOCK, TOP_K)[0]

    results = []
    for n in [4096, 16384] if args.quick else [4096, 16384, 65536]:
        q, k, v = (t.to("cuda", torch.bfloat16) for t in local_activations(n, HEADS, DIM, seed=n))
        tag = f"{n // 1024}k"
        t_dense = _time_cuda(_fwd_bwd(dense_causal_attention, q, k, v))
        t_flex = _time_cuda(_fwd_bwd(flex, q, k, v))
        t_gather = _time_cuda(_fwd_bwd(gather, q, k, v))
        k_dense, k_flex = _kernel_ms(_fwd_bwd(dense_causal_attention, q, k, v)), _kernel_ms(_fwd_bwd(flex, q, k, v))
        with torch.no_grad():
            out_flex, out_gather = flex(q, k, v), gather(q, k, v)
            diff = (out_flex.float() - out_gather.float()).abs().max().item()
            cos = cosine(out_flex, dense_causal_attention(q, k, v))
        print(f"{tag:>4}: dense (flash) {1e3 * t_dense:8.2f} ms  flex {1e3 * t_flex:7.2f} ms "
              f"x{t_dense / t_flex:5.2f}  gather {1e3 * t_gather:7.2f} ms x{t_dense / t_gather:5.2f}  "
              f"cosine {cos:.4f}  |flex - gather| {diff:.1e}  "
              f"kernels: dense {k_dense:.2f} ms flex {k_flex:.2f} ms")  # fmt: skip
        results += [
            {"name": f"dense_fwd_bwd_ms_{tag}", "value": 1e3 * t_dense, "unit": "ms", "goal": None,
             "higher_is_better": False},
            {"name": f"flex_fwd_bwd_ms_{tag}", "value": 1e3 * t_flex, "unit": "ms", "goal": None,
             "higher_is_better": False},
            {"name": f"flex_speedup_{tag}", "value": t_dense / t_flex, "unit": "x", "goal": None,
             "higher_is_better": True},
            {"name": f"gather_speedup_{tag}", "value": t_dense / t_gather, "unit": "x", "goal": None,
             "higher_is_better": True},
            {"name": f"dense_kernel_ms_{tag}", "value": k_dense, "unit": "ms", "goal": None,
             "higher_is_better": False},
            {"name": f"flex_kernel_ms_{tag}", "value": k_flex, "unit": "ms", "goal": None, "higher_is_better": False},
            {"name": f"flex_kernel_speedup_{tag}", "value": k_dense / k_flex, "unit": "x", "goal": None,
             "higher_is_better": True},
            {"name": f"cosine_synthetic_{tag}", "value": cos, "unit": "cosine", "goal": None,
             "higher_is_better": True},
            {"name": f"flex_vs_gather_max_abs_diff_{tag}", "value": diff, "unit": "abs", "goal": None,
             "higher_is_better": False},
        ]  # fmt: skip
    if args.quick:
        return
    from machine import machine_name, write_results


    device = torch.cuda.get_device_name()
    out = {"machine": f"{device}; {machine_name()}", "threads": torch.get_num_threads(), "results": results}
    write_results(RESULTS, out)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
