"""What the server holds: one loaded pipeline, its batched decoder, the batching queue and the video store."""

from __future__ import annotations

import os
import shlex
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.serving.batched import BatchedDecoder, ClipRequest
from worldmodel.serving.batcher import Batcher, Job

FPS = 10.0


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: output frames (``None``: twice the model's training length, minus 1), upload
    bytes; and how many videos the store keeps."""

    max_frames: int | None = None
    max_upload_bytes: int = 8 * 1024 * 1024
    keep_videos: int = 256


class VideoStore:
    """A folder of generated mp4 files (H.264 yuv420p, written atomically) that keeps only the newest ones."""

    def __init__(self, folder: str | os.PathLike | None, keep: int) -> None:
        self.folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="worldmodel-videos-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._names: deque[str] = deque()
        self._lock = threading.Lock()

    def save(self, frames: np.ndarray) -> str:
        """Write uint8 ``(T, H, W, 3)`` frames as a new mp4; return its file name (``<hex id>.mp4``)."""
        from worldmodel.pipelines.export import save_video

        name = f"{uuid.uuid4().hex}.mp4"
        save_video(self.folder / name, frames, fps=FPS)
        with self._lock:
            self._names.append(name)
            while len(self._names) > self.keep:
                (self.folder / self._names.popleft()).unlink(missing_ok=True)
        return name

    def path(self, name: str) -> Path | None:
        """The file of a stored video name, or ``None`` when there is no such video (any other name)."""
        with self._lock:
            known = name in self._names
        return self.folder / name if known else None


class Service:
    """A loaded pipeline served through a :class:`Batcher`: validate, queue, decode in batches, store videos.

    ``quantize`` (``None``, ``"int8"`` or ``"int4"``) quantises the world model with torchao on load.
    """

    def __init__(self, pipeline: Any, checkpoint: str, quantize: str | None = None, max_batch: int = 16,
                 max_queue: int = 64, batch_timeout: float = 0.02, videos_dir: str | os.PathLike | None = None,
                 limits: Limits | None = None) -> None:
        from worldmodel.serving.quantize import quantize_pipeline

        self.pipeline = quantize_pipeline(pipeline, quantize)
        self.checkpoint, self.quantize = checkpoint, quantize
        self.decoder = BatchedDecoder(self.pipeline)
        limits = limits or Limits()
        self.limits = replace(limits, max_frames=limits.max_frames or 2 * pipeline.trained_frames - 1)
        self.check_frames(self.limits.max_frames, "max_frames", low=1 + self.temporal_compression)
        if self.limits.max_upload_bytes < 1 or self.limits.keep_videos < 1:
            raise ValueError(f"max_upload_bytes and keep_videos must be positive, got {self.limits}")
        self.store = VideoStore(videos_dir, self.limits.keep_videos)
        self.batcher = Batcher(self._run, max_batch, max_queue, batch_timeout)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None = None, device: str = "cpu",
                        **kwargs: Any) -> Service:
        """Load a checkpoint folder (``None``: the packaged default) and serve it."""
        from worldmodel.pipelines.base import DEFAULT_CHECKPOINT
        from worldmodel.pipelines.text_to_video import TextToVideoPipeline

        pipeline = TextToVideoPipeline.from_checkpoint(checkpoint).to(device)
        return cls(pipeline, str(checkpoint or DEFAULT_CHECKPOINT), **kwargs)

    # ------------------------------------------------------------------------------------------- model facts
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the model's frames."""
        return self.pipeline.frame_size

    @property
    def max_prompt_bytes(self) -> int:
        """The longest prompt in UTF-8 bytes."""
        return self.pipeline.world_model.config.max_text_len

    @property
    def default_frames(self) -> int:
        """Output frames when a request names none: the model's training length, as the CLI."""
        return self.pipeline.trained_frames

    @property
    def temporal_compression(self) -> int:
        """Frames per latent frame after the first: frame counts are ``1 + tc * k``."""
        return self.pipeline.tokenizer.config.temporal_compression

    def info(self) -> dict[str, Any]:
        """What a client needs to know: model, limits, frame rules, queue."""
        height, width = self.frame_size
        return {"checkpoint": Path(self.checkpoint).name, "quantize": self.quantize, "frame_size": [height, width],
                "fps": FPS, "default_frames": self.default_frames, "frame_step": self.temporal_compression,
                "max_prompt_bytes": self.max_prompt_bytes, "max_batch": self.batcher.max_batch,
                "max_queue": self.batcher.max_queue, "queued": self.batcher.pending, **asdict(self.limits)}

    # ------------------------------------------------------------------------------------------- validation
    def check_prompt(self, prompt: str, required: bool = True) -> str:
        """Raise a one-sentence ``ValueError`` unless ``prompt`` is non-blank UTF-8 text within the byte limit."""
        try:
            size = len(prompt.encode("utf-8"))
        except UnicodeEncodeError as err:
            raise ValueError("prompt must be valid UTF-8 text (it holds a lone surrogate)") from err
        if required and not prompt.strip():
            raise ValueError("prompt must not be empty or only whitespace")
        if size > self.max_prompt_bytes:
            raise ValueError(f"prompt is {size} bytes in UTF-8, over the model's limit of {self.max_prompt_bytes}")
        return prompt

    def check_frames(self, num_frames: int, what: str = "num_frames", low: int = 1) -> int:
        """Raise a one-sentence ``ValueError`` unless ``num_frames`` is ``1 + tc*k`` in ``[low, max_frames]``."""
        tc, top = self.temporal_compression, self.limits.max_frames
        if not low <= num_frames <= top or (num_frames - 1) % tc:
            raise ValueError(f"{what} must be 1 + {tc}*k frames between {low} and {top}, got {num_frames}")
        return num_frames

    # ------------------------------------------------------------------------------------------- running
    def submit(self, request: ClipRequest, job_id: str | None = None) -> Job:
        """Queue a checked request (raises :class:`~worldmodel.serving.batcher.QueueFull` when full)."""
        return self.batcher.submit(job_id or uuid.uuid4().hex, request, request.batch_key())

    def close(self) -> None:
        """Stop the batching worker (waiting requests fail)."""
        self.batcher.close()

    def _run(self, requests: list[ClipRequest], progress: Any) -> list[str]:
        """Decode a batch and store its videos: the stored file names, in order."""
        return [self.store.save(frames) for frames in self.decoder(requests, progress)]

    def answer(self, job: Job, name: str) -> dict[str, Any]:
        """The JSON answer of a finished request: its video, seed, settings, batch timing and the CLI command."""
        r: ClipRequest = job.payload
        settings = {"prompt": r.prompt, "num_frames": r.num_frames, "guidance_scale": r.guidance_scale,
                    "temperature": r.sampling.temperature, "top_k": r.sampling.top_k, "top_p": r.sampling.top_p}
        if r.context is not None:
            settings["context_frames"] = r.context_frames
        settings.update(checkpoint=Path(self.checkpoint).name, quantize=self.quantize)
        return {"video": f"/videos/{name}", "seed": r.seed, "settings": settings, "cli": self._command(r),
                "batch": {"size": job.batch_size, "queue_seconds": round(job.started - job.submitted, 4),
                          "decode_seconds": round(job.finished - job.started, 4)}}

    def _command(self, r: ClipRequest) -> str:
        """The ``worldmodel`` command line that asks for the same video (same seed and settings)."""
        if r.context is None:
            args = ["worldmodel", "generate", r.prompt, "--guidance", str(r.guidance_scale)]
        else:
            args = ["worldmodel", "rollout", "INPUT.mp4", "--context-frames", str(r.context_frames)]
            if r.prompt:
                args += ["--prompt", r.prompt, "--guidance", str(r.guidance_scale)]
        args += ["--seed", str(r.seed), "--frames", str(r.num_frames), "--temperature", str(r.sampling.temperature)]
        if r.sampling.top_k is not None:
            args += ["--top-k", str(r.sampling.top_k)]
        elif r.context is None:  # generate's default is top-k 5: every code is top-k = codebook size
            args += ["--top-k", str(self.pipeline.world_model.config.codebook_size)]
        if r.sampling.top_p is not None:
            args += ["--top-p", str(r.sampling.top_p)]
        if self.checkpoint != str(_default_checkpoint()):
            args += ["--checkpoint", self.checkpoint]
        return shlex.join(args + ["--batch-invariant", "-o", "out.mp4"])


def _default_checkpoint() -> Path:
    """The packaged default checkpoint folder."""
    from worldmodel.pipelines.base import DEFAULT_CHECKPOINT

    return DEFAULT_CHECKPOINT
