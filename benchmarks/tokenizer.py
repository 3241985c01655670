"""Video tokenizer quality and speed on held-out simulator episodes.

    python benchmarks/tokenizer.py --tokenizer DIR [--episodes 100] [--threads 2] [--quick]

``DIR`` is a ``save_pretrained`` folder of a :class:`~worldmodel.tokenizers.VideoTokenizer` (default:
the packaged ``worldmodel/assets/default/tokenizer`` when present, else a random init of
``configs/tokenizer-tiny.yaml``, marked untrained in the JSON). For the ``test_id`` and ``test_ood``
splits (17 frames of 64x64, scenarios in turn) it reports:

- ``psnr_*``: per-video PSNR (dB) of the uint8 reconstruction ``decode(encode(x))`` against the uint8
  input, averaged over videos. Goal on test_id: >= 34 dB (36 dB the aim).
- ``ssim_*``: per-frame SSIM (torchmetrics, Gaussian 11x11), averaged.
- ``codebook_usage_*``: share of the codebook's entries used at least once over the split. Goal on
  test_id: >= 90 %. ``perplexity_*``: exp(entropy) of the split's code histogram.
- ``white_ball_error_*``: mean absolute RGB error (levels) of the reconstruction on the interior pixels
  (more than 1.5 px inside the edge) of white balls. Goal on test_id: <= 10 levels.
- ``ball_interior_error_*``: the same over the interior pixels of every ball.
- ``reconstruction_permanence_*``: share of checked frames of the reconstructions where the balls seen are
  exactly the true balls (:mod:`worldmodel.evaluation.permanence`). Goal on test_id: >= 0.99.
- ``baseline_psnr_*``: the same clips through a continuous (unquantized) baseline at the same 4x8x8
  grid: 8x8 average pooling, bilinear upsampling, each latent frame held for its frames.
- ``encode_fps`` / ``decode_fps``: video frames per second, batch 8, on ``--threads`` CPU threads.

Writes ``benchmarks/results/tokenizer.json`` (``--quick`` writes nothing unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import machine_name, write_results  # noqa: E402

from configs import config_kwargs  # noqa: E402
from worldmodel.datasets import SCENARIOS, simulate  # noqa: E402
from worldmodel.evaluation.permanence import permanence, summarize  # noqa: E402
from worldmodel.tokenizers import VideoTokenizer  # noqa: E402
from worldmodel.tokenizers.quantizers import code_statistics  # noqa: E402
from worldmodel.training.tokenizer_module import video_psnr_ssim  # noqa: E402
from worldmodel.video import to_float  # noqa: E402

DEFAULT_TOKENIZER = ROOT / "worldmodel" / "assets" / "default" / "tokenizer"


def load_tokenizer(path: Path | None) -> tuple[VideoTokenizer, str]:
    """The tokenizer at ``path`` (or the packaged default), else a random init of the tiny config."""
    path = path or (DEFAULT_TOKENIZER if (DEFAULT_TOKENIZER / "config.json").is_file() else None)
    if path is not None:
        if not (Path(path) / "config.json").is_file():
            raise SystemExit(f"error: {path} is not a save_pretrained tokenizer folder (no config.json)")
        return VideoTokenizer.from_pretrained(path, low_cpu_mem_usage=False).eval(), str(path)
    torch.manual_seed(0)
    kwargs = {k: tuple(v) if isinstance(v, list) else v
              for k, v in config_kwargs("tokenizer-tiny.yaml", "temporal_compression", VideoTokenizer).items()}
    return VideoTokenizer(**kwargs).eval(), "random init of configs/tokenizer-tiny.yaml (untrained)"


def episodes(split: str, count: int) -> tuple[torch.Tensor, list[dict]]:
    """``uint8 (N, 17, 64, 64, 3)`` simulator episodes of ``split``, scenarios in turn, and their annotations."""
    eps = [simulate(SCENARIOS[i % len(SCENARIOS)], split, i) for i in range(count)]
    return torch.from_numpy(np.stack([e.frames for e in eps])), [e.annotation for e in eps]


def interior_errors(rec: np.ndarray, real: np.ndarray, annotations: list[dict]) -> tuple[float, float]:
    """Mean absolute RGB error on ball interiors: (white balls only, every ball), levels 0-255."""
    white, every = [], []
    _, t, h, w, _ = real.shape
    ys, xs = np.mgrid[0:h, 0:w]
    for k, annotation in enumerate(annotations):
        states = np.asarray(annotation["states"])[:t]
        for i, obj in enumerate(annotation["objects"]):
            for f in range(t):
                x, y = states[f, i, :2]
                inside = (xs - x) ** 2 + (ys - y) ** 2 < max(obj["radius"] - 1.5, 0.0) ** 2  # (H, W)
                if not inside.any():
                    continue
                err = np.abs(rec[k, f][inside].astype(np.float64) - real[k, f][inside]).mean(axis=-1)
                every.append(err)
                if obj["color"] == "white":
                    white.append(err)
    mean = lambda parts: float(np.concatenate(parts).mean()) if parts else float("nan")  # noqa: E731
    return mean(white), mean(every)


def psnr_ssim(rec: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video PSNR (dB) and mean per-frame SSIM of uint8 ``(N, T, H, W, 3)`` clips (the training module's
    metric, on the uint8 videos a user gets)."""
    return video_psnr_ssim(to_float(rec), to_float(real))


def baseline(real: torch.Tensor, tc: int, sc: int) -> torch.Tensor:
    """Continuous pool/upsample/hold reconstruction of uint8 clips at the tokenizer's grid."""
    x = to_float(real)  # (N, 3, T, H, W)
    n, c, t, h, w = x.shape
    frames = x.transpose(1, 2).reshape(n * t, c, h, w)
    small = F.avg_pool2d(frames, sc)
    up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).view(n, t, c, h, w)
    held = [0] + [min(tc * (1 + (k - 1) // tc), t - 1) for k in range(1, t)]  # last frame of each latent frame
    up = up[:, held]
    return ((up.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2)


@torch.no_grad()
def evaluate(tokenizer: VideoTokenizer, clips: torch.Tensor, annotations: list[dict], batch: int
             ) -> dict[str, float]:
    """PSNR, SSIM, usage, perplexity, ball-interior errors and permanence of ``decode(encode(clips))``."""
    recs, codes = [], []
    for i in range(0, len(clips), batch):
        c = tokenizer.encode(clips[i:i + batch])
        codes.append(c)
        recs.append(((tokenizer.decode(c) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 4, 1))
    rec = torch.cat(recs)
    psnr, ssim = psnr_ssim(rec, clips)
    usage, perplexity = code_statistics(torch.cat(codes), tokenizer.codebook_size)
    cfg = tokenizer.config
    base_psnr, _ = psnr_ssim(baseline(clips, cfg.temporal_compression, cfg.spatial_compression), clips)
    white, interior = interior_errors(rec.numpy(), clips.numpy(), annotations)
    kept = summarize([permanence(r, a) for r, a in zip(rec.numpy(), annotations, strict=True)])
    return {"psnr": float(psnr.mean()), "ssim": float(ssim.mean()), "usage": float(usage),
            "perplexity": float(perplexity), "white_ball_error": white, "ball_interior_error": interior,
            "reconstruction_permanence": kept["frame_permanence"], "baseline_psnr": float(base_psnr.mean())}


@torch.no_grad()
def speed(tokenizer: VideoTokenizer, clips: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Encode and decode frames per second on a batch of clips (best of ``repeats``)."""
    codes = tokenizer.encode(clips)  # warm-up
    tokenizer.decode(codes)
    enc, dec = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        codes = tokenizer.encode(clips)
        t1 = time.perf_counter()
        tokenizer.decode(codes)
        t2 = time.perf_counter()
        enc.append(t1 - t0)
        dec.append(t2 - t1)
    frames = clips.shape[0] * clips.shape[1]
    return frames / min(enc), frames / min(dec)


def main() -> None:
    """Run the benchmark, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, default=None, help="save_pretrained VideoTokenizer folder")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per split")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 episodes, one timing repeat")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer, source = load_tokenizer(args.tokenizer)
    count = 10 if args.quick else args.episodes
    results = []
    goals = {"psnr": 34.0, "usage": 0.90, "white_ball_error": 10.0, "reconstruction_permanence": 0.99}
    lower_is_better = {"white_ball_error", "ball_interior_error"}
    for split in ("test_id", "test_ood"):
        metrics = evaluate(tokenizer, *episodes(split, count), batch=8)
        for key, unit in (("psnr", "dB"), ("ssim", ""), ("usage", "fraction"), ("perplexity", "codes"),
                          ("white_ball_error", "levels"), ("ball_interior_error", "levels"),
                          ("reconstruction_permanence", "fraction"), ("baseline_psnr", "dB")):
            name = f"codebook_usage_{split}" if key == "usage" else f"{key}_{split}"
            goal = goals.get(key) if split == "test_id" else None
            results.append({"name": name, "value": round(metrics[key], 4), "unit": unit, "goal": goal,
                            "higher_is_better": key not in lower_is_better})
    enc_fps, dec_fps = speed(tokenizer, episodes("test_id", 8)[0], repeats=1 if args.quick else 3)
    results += [{"name": "encode_fps", "value": round(enc_fps, 1), "unit": "frames/s", "goal": None,
                 "higher_is_better": True},
                {"name": "decode_fps", "value": round(dec_fps, 1), "unit": "frames/s", "goal": None,
                 "higher_is_better": True}]
    print(f"tokenizer: {source}  ({sum(p.numel() for p in tokenizer.parameters()) / 1e6:.2f} M parameters, "
          f"{tokenizer.codebook_size} codes, {count} episodes per split)")
    print(f"{'metric':<28}{'value':>12}  {'unit':<10}{'goal':>8}")
    for r in results:
        goal = "" if r["goal"] is None else r["goal"]
        print(f"{r['name']:<28}{r['value']:>12}  {r['unit']:<10}{goal:>8}")
    out = args.out or (None if args.quick else ROOT / "benchmarks" / "results" / "tokenizer.json")
    if out is not None:

        write_results(out, {"machine": machine_name(),
                                "threads": torch.get_num_threads(), "tokenizer": source, "episodes": count,
                                "parameters": sum(p.numel() for p in tokenizer.parameters()),
                                "codebook_size": tokenizer.codebook_size, "results": results})
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
