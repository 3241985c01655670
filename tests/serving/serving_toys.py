"""Helpers of the serving tests: a tiny random pipeline and a ``worldmodel serve`` subprocess."""

import socket
import subprocess
import sys
import time

import httpx
import torch

from worldmodel.model import WorldModel
from worldmodel.pipelines import TextToVideoPipeline
from worldmodel.tokenizers import VideoTokenizer

TINY_WORLD = dict(latent_frames=3, latent_height=4, latent_width=4, max_text_len=64, d_model=32, n_layers=2,
                  n_heads=2, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=12, v_head_dim=8,
                  n_dense_layers=1, dense_hidden=64, moe_experts=4, moe_expert_hidden=16, moe_top_k=2, moe_groups=2,
                  moe_topk_groups=1, text_d_model=16, text_layers=1, text_heads=2)


def tiny_pipeline() -> TextToVideoPipeline:
    """A randomly initialised pipeline: 9 frames of 32x32 (3 latent frames of 4x4 codes), 16 codes, MoE of 4."""
    torch.manual_seed(0)
    tokenizer = VideoTokenizer(channels=(8, 8, 8), patch_size=4, fsq_levels=(4, 4))
    world = WorldModel(codebook_size=tokenizer.codebook_size, **TINY_WORLD)
    return TextToVideoPipeline(tokenizer, world)


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*args: str, threads: int = 1, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start ``worldmodel serve ARGS`` on a free loopback port with ``threads`` torch threads; return it and its
    base URL once ``/api/health`` answers."""
    port = free_port()
    command = [sys.executable, "-c", f"import sys, torch; torch.set_num_threads({threads}); "
               "from worldmodel.cli import main; sys.exit(main())", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the server did not answer within {timeout} s")


def stop_server(process: subprocess.Popen) -> None:
    """Stop a server started by :func:`start_server`."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
