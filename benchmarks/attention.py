"""Multi-head latent attention: KV-cache bytes per token, layer speed vs MHA, FLOP utilisation vs a measured matmul.

    python benchmarks/attention.py [--batch 4] [--seq 1024] [--repeats 5] [--threads 2] [--quick]

- `kv_bytes_per_token_*`: bytes the KV cache holds per token per layer, read from a real `KVCache` after a bf16
  forward of the world model, against standard multi-head attention of the same width (keys and values of
  `d_model` each). Goal: at least 4x smaller. The DeepSeek-V3 row is the same formula at its published sizes.
- `mla_vs_mha_*`: forward + backward of one causal self-attention layer on `batch x seq` = 4096 tokens, d_model
  256, against `torch.nn.MultiheadAttention`-sized standard MHA (fused QKV, SDPA), fp32 and bf16, interleaved,
  medians. Speedup, higher is better (no goal: MLA trades a little compute for the small cache).
- `flop_utilisation_vs_measured_matmul_*` (called MFU elsewhere, but the denominator here is a measured matmul,
  not the hardware peak): FLOP utilisation of a whole training step (forward, backward, AdamW) of a d_model 256 world
  model (4 layers, 1 dense + 3 fine-grained MoE: 64 experts of width 64, top-6 of 4/8 groups, 1 shared) on 4096
  tokens with text: analytic model FLOPs (matmuls + attention scores, 3x forward) / step time / the throughput
  of a 2048x2048 matmul of the same dtype measured in the same run. Goal (bf16): at least 35 %.

Writes `benchmarks/results/attention.json` (`--quick`: a smaller run, writes nothing unless `--out`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_name, write_results  # noqa: E402

from worldmodel.model import MultiHeadLatentAttention, WorldModel  # noqa: E402
from worldmodel.model.rope import VideoRoPE  # noqa: E402
from worldmodel.tokenizers.text import ByteTokenizer  # noqa: E402

D_MODEL, N_HEADS = 256, 4
MLA = dict(kv_lora_rank=64, qk_nope_head_dim=32, qk_rope_head_dim=24, v_head_dim=32)
CAPTION = "a red ball bounces off the floor and rolls to the right"


def model_config(seq: int) -> dict:
    """The benchmarked world model: d_model 256, 4 layers, fine-grained MoE, a code grid of `seq` codes."""
    return dict(
        codebook_size=1000, latent_frames=seq // 64, latent_height=8, latent_width=8, d_model=D_MODEL, n_layers=4,
        n_heads=N_HEADS, **MLA, n_dense_layers=1, dense_hidden=448, moe_experts=64, moe_expert_hidden=64,
        moe_top_k=6, moe_groups=8, moe_topk_groups=4, moe_shared_experts=1, text_d_model=128, text_layers=2,
        text_heads=4,
    )  # fmt: skip


class StandardAttention(nn.Module):
    """Causal multi-head attention of the same width: fused QKV projection, SDPA, output projection."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, N, dh)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops_per_s(dtype: torch.dtype, device: torch.device, repeats: int, n: int = 2048) -> float:
    """Median throughput of an n x n x n matmul in `dtype`."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times[1:])


def native_bf16(device: torch.device) -> bool:
    """False on CPUs without bf16 matmul hardware (no AVX512-BF16/AMX), where bf16 is emulated and slower than fp32."""
    if device.type != "cpu":
        return True
    return matmul_flops_per_s(torch.bfloat16, device, 2, 256) > 0.5 * matmul_flops_per_s(torch.float32, device, 2, 256)


def train_step_flops(model: WorldModel, batch: int, seq: int, text_len: int) -> float:
    """Analytic FLOPs of one training step: 3 x (2 x matmul weights used per token + attention scores)."""
    c = model.config
    qk, h = c.qk_nope_head_dim + c.qk_rope_head_dim, c.n_heads
    attn = c.d_model * h * qk + c.d_model * (c.kv_lora_rank + c.qk_rope_head_dim)
    attn += c.kv_lora_rank * h * (c.qk_nope_head_dim + c.v_head_dim) + h * c.v_head_dim * c.d_model
    bridge = 2 * c.d_model * c.d_model  # q and out projections per video token
    dense = 3 * c.d_model * c.dense_hidden
    moe = 3 * c.d_model * c.moe_expert_hidden * (c.moe_top_k + c.moe_shared_experts) + c.d_model * c.moe_experts
    per_token = c.n_layers * (attn + bridge) + c.n_dense_layers * dense + (c.n_layers - c.n_dense_layers) * moe
    per_token += c.d_model * c.codebook_size  # lm head
    forward = 2 * per_token * batch * seq
    forward += c.n_layers * 2 * h * (qk + c.v_head_dim) * (seq + 1) / 2 * batch * seq  # causal self-attention
    forward += c.n_layers * 2 * 2 * c.d_model * text_len * batch * seq  # cross-attention scores
    forward += c.n_layers * 2 * text_len * c.text_d_model * 2 * c.d_model * batch  # bridge K/V projections
    t = c.text_d_model
    forward += c.text_layers * 2 * (4 * t * t + 8 * t * t) * text_len * batch + c.text_layers * 4 * t * text_len**2
    return 3 * forward


def kv_rows(batch: int, device: torch.device) -> list[dict]:
    """KV-cache bytes per token per layer: measured MLA cache vs MHA of the same width (and DeepSeek-V3 sizes)."""
    model = WorldModel(**model_config(256)).to(device, torch.bfloat16).eval()
    cache = model.new_cache(batch)
    ids = torch.randint(0, 1000, (batch, 65), device=device)
    ids[:, 0] = model.bos_token_id
    with torch.no_grad():
        model(ids, None, cache)
    ours = cache.nbytes_per_token() / model.config.n_layers
    mha = 2 * D_MODEL * 2  # K and V, d_model values each, bf16
    dsv3_mla, dsv3_mha = 512 + 64, 2 * 128 * 128  # values per token per layer at DeepSeek-V3 sizes
    print(f"KV cache per token per layer (bf16): MLA {ours:.0f} B, MHA {mha} B -> {mha / ours:.2f}x smaller")
    print(f"DeepSeek-V3 sizes: MLA {dsv3_mla} values, MHA {dsv3_mha} values -> {dsv3_mha / dsv3_mla:.1f}x")
    return [
        {"name": "kv_bytes_per_token_per_layer_mla_bf16", "value": ours, "unit": "bytes", "goal": None,
         "higher_is_better": False},
        {"name": "kv_bytes_per_token_per_layer_mha_bf16", "value": mha, "unit": "bytes", "goal": None,
         "higher_is_better": False},
        {"name": "kv_cache_reduction_vs_mha", "value": round(mha / ours, 3), "unit": "x", "goal": 4.0,
         "higher_is_better": True},
        {"name": "kv_cache_reduction_vs_mha_deepseek_v3_sizes", "value": round(dsv3_mha / dsv3_mla, 2), "unit": "x",
         "goal": None, "higher_is_better": True},
    ]  # fmt: skip


def layer_rows(batch: int, seq: int, repeats: int, device: torch.device) -> list[dict]:
    """Fwd+bwd of one MLA layer vs one standard MHA layer, fp32 and bf16, interleaved medians."""
    rows = []
    rope = VideoRoPE(MLA["qk_rope_head_dim"], 8, 8).to(device)
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)
        layers = {"mla": MultiHeadLatentAttention(D_MODEL, N_HEADS, **MLA), "mha": StandardAttention(D_MODEL, N_HEADS)}
        layers = {k: v.to(device, dtype) for k, v in layers.items()}
        x = torch.randn(batch, seq, D_MODEL, device=device).to(dtype).requires_grad_(True)
        grad = torch.randn_like(x)
        cos_sin = rope(0, seq, device)
        times: dict[str, list[float]] = {k: [] for k in layers}
        for r in range(repeats + 1):
            for name in (("mla", "mha") if r % 2 else ("mha", "mla")):
                layers[name].zero_grad(set_to_none=True)
                sync(device)
                start = time.perf_counter()
                y = layers[name](x, cos_sin) if name == "mla" else layers[name](x)
                y.backward(grad)
                sync(device)
                if r:
                    times[name].append(time.perf_counter() - start)
        mla, mha = statistics.median(times["mla"]), statistics.median(times["mha"])
        tag = str(dtype).removeprefix("torch.")
        print(f"attention layer fwd+bwd {tag:9}: MLA {mla * 1e3:8.1f} ms, MHA {mha * 1e3:8.1f} ms -> {mha / mla:.2f}x")
        rows.append({"name": f"mla_vs_mha_fwd_bwd_{tag}", "value": round(mha / mla, 3), "unit": "x", "goal": None,
                     "higher_is_better": True})  # fmt: skip
    return rows


def mfu_rows(batch: int, seq: int, repeats: int, device: torch.device) -> list[dict]:
    """Training-step FLOP utilisation of the benchmark world model against a same-dtype matmul measured in this run."""
    rows = []
    ids_text, mask = ByteTokenizer().encode([CAPTION] * batch)
    for dtype in (torch.bfloat16, torch.float32):
        tag = str(dtype).removeprefix("torch.")
        if dtype == torch.bfloat16 and not native_bf16(device):
            print("training step bfloat16 : skipped, this CPU has no native bf16 matmul (emulated, slower than fp32)")
            rows.append({"name": f"flop_utilisation_vs_measured_matmul_{tag}", "value": None, "unit": "fraction",
                         "goal": 0.35, "higher_is_better": True,
                         "note": "not measured: no native bf16 on this CPU"})
            continue
        torch.manual_seed(0)
        model = WorldModel(**model_config(seq)).to(device, dtype).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        codes = torch.randint(0, 1000, (batch, seq), device=device)
        ids = torch.cat([torch.full((batch, 1), model.bos_token_id, device=device), codes[:, :-1]], dim=1)
        step_times, peaks = [], []
        for r in range(repeats + 1):
            peaks.append(matmul_flops_per_s(dtype, device, 1))  # interleaved with the steps it is compared to
            sync(device)
            start = time.perf_counter()
            out = model(ids, model.encode_text(ids_text, mask))
            loss = F.cross_entropy(out.logits.float().flatten(0, 1), codes.flatten()) + out.aux_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model.update_router_biases()
            sync(device)
            if r:
                step_times.append(time.perf_counter() - start)
        flops = train_step_flops(model, batch, seq, ids_text.shape[1])
        step, peak = statistics.median(step_times), statistics.median(peaks[1:])
        mfu = flops / step / peak
        print(f"training step {tag:9}: {step * 1e3:8.0f} ms, {flops / step / 1e9:6.1f} GFLOP/s model, "
              f"{peak / 1e9:6.1f} GFLOP/s matmul -> FLOP utilisation vs matmul {100 * mfu:.1f} %")  # fmt: skip
        rows += [
            {"name": f"flop_utilisation_vs_measured_matmul_{tag}", "value": round(mfu, 3), "unit": "fraction",
             "goal": 0.35 if dtype == torch.bfloat16 else None, "higher_is_better": True},
            {"name": f"train_step_model_gflops_{tag}", "value": round(flops / step / 1e9, 2), "unit": "GFLOP/s",
             "goal": None, "higher_is_better": True},
            {"name": f"matmul_2048_gflops_{tag}", "value": round(peak / 1e9, 2), "unit": "GFLOP/s", "goal": None,
             "higher_is_better": True},
        ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1024, help="tokens per sequence (a multiple of 64)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 x 128 tokens, 1 repeat, no JSON")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.seq, args.repeats = 2, 128, 1
    if args.seq % 64:
        raise ValueError(f"--seq must be a multiple of 64 (frames of 8 x 8 codes), got {args.seq}.")
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "attention.json")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = kv_rows(args.batch, device) + layer_rows(args.batch, args.seq, args.repeats, device)
    results += mfu_rows(args.batch, args.seq, args.repeats, device)
    if out is not None:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else machine_name()
        write_results(out, {"machine": name, "threads": args.threads, "native_bf16": native_bf16(device),
                                "tokens": args.batch * args.seq, "repeats": args.repeats,
                                "results": results})  # fmt: skip
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
