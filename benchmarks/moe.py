"""MoE layer speed: ours vs a dense FFN of equal active parameters vs Hugging Face `DeepseekV3MoE`.

    python benchmarks/moe.py [--tokens 4096] [--repeats 9] [--threads 2] [--quick]

Forward + backward of one layer on `--tokens` tokens of width 256, fp32 and bf16, for two shapes:

- fine: 64 routed experts of width 64 in 8 groups, 4 groups kept, top-6, 1 shared expert (DeepSeek-V3 style);
- coarse: 16 routed experts of width 256, top-2, no shared expert (Mixtral style).

Baselines, built in the same run with the same sizes: a SwiGLU FFN whose hidden width equals the active expert
width (`(top_k + shared) * expert_width`), and transformers' `DeepseekV3MoE` with our weights copied in (so both
route identically). Timings are interleaved (the machine is shared) and the median is reported. Ratios are
speedups (higher is better): `vs_dense` = dense time / our time (goal >= 0.8), `vs_hf` = HF time / our time
(goal >= 2 on the fine shape, >= 1 on the coarse one).

Writes `benchmarks/results/moe.json` (`--quick`: fewer tokens and repeats, writes nothing unless `--out`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_name, write_results  # noqa: E402

from worldmodel.model import FeedForward, MoE  # noqa: E402

SHAPES = {
    "fine": dict(n_experts=64, expert_hidden=64, top_k=6, n_groups=8, topk_groups=4, n_shared=1),
    "coarse": dict(n_experts=16, expert_hidden=256, top_k=2, n_groups=1, topk_groups=1, n_shared=0),
}
D_MODEL = 256


def huggingface_moe(ours: MoE, shape: dict) -> nn.Module:
    """transformers' DeepseekV3MoE of the same sizes, holding a copy of our weights."""
    from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    config = DeepseekV3Config(
        hidden_size=D_MODEL, moe_intermediate_size=shape["expert_hidden"], n_routed_experts=shape["n_experts"],
        num_experts_per_tok=shape["top_k"], n_group=shape["n_groups"], topk_group=shape["topk_groups"],
        n_shared_experts=shape["n_shared"], routed_scaling_factor=1.0, norm_topk_prob=True, hidden_act="silu",
    )  # fmt: skip
    hf = DeepseekV3MoE(config)
    with torch.no_grad():
        hf.gate.weight.copy_(ours.router.weight)
        hf.experts.gate_up_proj.copy_(ours.experts.w13)
        hf.experts.down_proj.copy_(ours.experts.w2)
        if ours.shared is not None:
            hf.shared_experts.load_state_dict(ours.shared.state_dict())
    return hf


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fwd_bwd(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds for one forward + backward."""
    module.zero_grad(set_to_none=True)
    x.grad = None
    sync(x.device)
    start = time.perf_counter()
    y = module(x)
    y = y[0] if isinstance(y, tuple) else y
    y.backward(grad)
    sync(x.device)
    return time.perf_counter() - start


def measure(shape_name: str, dtype: torch.dtype, tokens: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Median fwd+bwd seconds of ours, dense and HF for one shape and dtype (interleaved, rotating order)."""
    shape = SHAPES[shape_name]
    torch.manual_seed(0)
    ours = MoE(D_MODEL, **shape)
    nn.init.normal_(ours.router.weight, std=0.02)
    active = (shape["top_k"] + shape["n_shared"]) * shape["expert_hidden"]
    modules = {"ours": ours, "dense": FeedForward(D_MODEL, active), "hf": huggingface_moe(ours, shape)}
    modules = {k: m.to(device, dtype).train() for k, m in modules.items()}
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, tokens, D_MODEL, generator=g).to(device, dtype).requires_grad_(True)
    grad = torch.randn(1, tokens, D_MODEL, generator=g).to(device, dtype)
    times: dict[str, list[float]] = {k: [] for k in modules}
    names = list(modules)
    for r in range(repeats + 1):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t = fwd_bwd(modules[name], x, grad)
            if r:  # the first round warms up
                times[name].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="smoke run: 512 tokens, 2 repeats, no JSON")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.tokens, args.repeats = 512, 2
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "moe.json")
    torch.set_num_threads(args.threads)

    results = []
    print(f"{'shape':8} {'dtype':9} {'ours ms':>9} {'dense ms':>9} {'HF ms':>9} {'vs dense':>9} {'vs HF':>7}")
    for shape in SHAPES:
        for dtype in (torch.float32, torch.bfloat16):
            t = measure(shape, dtype, args.tokens, args.repeats, torch.device(args.device))
            tag = f"{shape}_{str(dtype).removeprefix('torch.')}"
            vs_dense, vs_hf = t["dense"] / t["ours"], t["hf"] / t["ours"]
            print(f"{shape:8} {tag.split('_')[1]:9} {t['ours'] * 1e3:9.1f} {t['dense'] * 1e3:9.1f} "
                  f"{t['hf'] * 1e3:9.1f} {vs_dense:8.2f}x {vs_hf:6.2f}x")  # fmt: skip
            results += [
                {"name": f"{tag}_vs_dense", "value": round(vs_dense, 3), "unit": "x", "goal": 0.8,
                 "higher_is_better": True},
                {"name": f"{tag}_vs_hf_deepseekv3", "value": round(vs_hf, 3), "unit": "x",
                 "goal": 2.0 if shape == "fine" else 1.0, "higher_is_better": True},
                {"name": f"{tag}_hf_deepseekv3_vs_dense", "value": round(t["dense"] / t["hf"], 3), "unit": "x",
                 "goal": None, "higher_is_better": True},
                {"name": f"{tag}_tokens_per_s", "value": round(args.tokens / t["ours"]), "unit": "tokens/s",
                 "goal": None, "higher_is_better": True},
            ]  # fmt: skip
    if out is not None:
        device = torch.device(args.device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else machine_name()
        write_results(out, {"machine": name, "threads": args.threads, "device": args.device,
                                "tokens": args.tokens, "repeats": args.repeats, "results": results})  # fmt: skip
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
