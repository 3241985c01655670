"""``worldmodel serve``: one process holds the model and answers JSON over HTTP, with a web page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``worldmodel`` command."""
    from worldmodel.serving.quantize import QUANTIZE_HELP, QUANTIZE_MODES

    serve = subparsers.add_parser("serve", help="serve text to video and rollouts over HTTP, with a web page",
                                  description="Load the model once and serve it: a JSON API with dynamic batching "
                                              "(requests that arrive together are decoded together) and a page "
                                              "at / to try it in a browser.")
    serve.add_argument("--checkpoint", type=Path, default=None,
                       help="pipeline folder (save_pretrained); default: the packaged worldmodel/assets/default")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    serve.add_argument("--max-batch", type=int, default=16, help="most requests decoded together (default 16)")
    serve.add_argument("--batch-timeout", type=float, default=0.02,
                       help="seconds to wait for more requests before a batch starts (default 0.02)")
    serve.add_argument("--max-queue", type=int, default=64,
                       help="most requests waiting or running; more get 429 (default 64)")
    serve.add_argument("--max-frames", type=int, default=None,
                       help="most output frames per request (default: twice the model's training length, minus 1)")
    serve.add_argument("--max-upload-mb", type=float, default=8.0, help="largest rollout upload in MiB (default 8)")
    serve.add_argument("--keep-videos", type=int, default=256, help="generated videos kept on disk (default 256)")
    serve.add_argument("--videos-dir", type=Path, default=None,
                       help="folder for generated videos (default: a new temporary folder)")
    serve.add_argument("--quantize", choices=QUANTIZE_MODES, default=None, help=QUANTIZE_HELP)
    serve.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Handler of ``worldmodel serve``: load, then serve until interrupted."""
    import torch
    import uvicorn

    from worldmodel.serving.app import create_app
    from worldmodel.serving.service import Limits, Service

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    service = Service.from_checkpoint(args.checkpoint, device=device, quantize=args.quantize,
                                      max_batch=args.max_batch, max_queue=args.max_queue,
                                      batch_timeout=args.batch_timeout, videos_dir=args.videos_dir,
                                      limits=Limits(args.max_frames, int(args.max_upload_mb * 2**20), args.keep_videos))
    try:
        uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="warning")
    finally:
        service.close()
    return 0
