"""Physics rollout (video to video): encode context frames, continue their codes with the world model, decode.

Like Cosmos Video2World: the output holds the context (as the tokenizer reconstructs it) followed by the
predicted frames. A prompt is optional; without one the world model runs unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils import BaseOutput

from worldmodel.pipelines.base import WorldModelPipeline, as_prompts, as_uint8_video, check_output_type
from worldmodel.pipelines.sampling import SamplingParams


@dataclass
class PhysicsRolloutPipelineOutput(BaseOutput):
    """``frames``: the context followed by the prediction, ``num_frames`` frames per video, as uint8 numpy
    ``(B, T, H, W, 3)`` ("np"), uint8 tensor ("pt"), lists of PIL images ("pil") or codes ("latent")."""

    frames: Any


class PhysicsRolloutPipeline(WorldModelPipeline):
    """Continue videos: given the first frames of a scene, imagine how it goes on.

    Example::

        pipe = PhysicsRolloutPipeline.from_checkpoint()
        out = pipe("episode.mkv", num_frames=17).frames[0]  # the file's frames are the context
    """

    @torch.no_grad()
    def __call__(self, video: str | os.PathLike | np.ndarray | torch.Tensor, num_frames: int | None = None,
                 prompt: str | list[str] | None = None, guidance_scale: float = 1.0, temperature: float = 0.0,
                 top_k: int | None = None, top_p: float | None = None, generator: torch.Generator | None = None,
                 output_type: str = "np", speculative: bool | str = False, num_draft_tokens: int = 4,
                 use_cache: bool = True, window_stride: int = 1, window_rule: str = "reencode",
                 return_dict: bool = True) -> PhysicsRolloutPipelineOutput | tuple:
        """Roll ``video`` forward to ``num_frames`` frames.

        Args:
            video: the context frames, uint8 ``(T, H, W, 3)`` or ``(B, T, H, W, 3)`` (array or tensor) or a
                video file path; ``T`` must be ``1 + tc * k`` and the size the world model's.
            num_frames: total output frames (context included), ``1 + tc * k`` and more than ``T``; default:
                the world model's training length. Longer rollouts slide a window over latent frames
                (``window_stride`` and ``window_rule`` as in :class:`~worldmodel.pipelines.TextToVideoPipeline`).
            prompt: optional text (one, or one per video); ``guidance_scale`` applies only with a prompt.
            temperature: 0 (greedy, the default) had the lowest velocity error on ``val`` episodes.
            Other arguments as in :class:`~worldmodel.pipelines.TextToVideoPipeline`.
        """
        check_output_type(output_type)
        frames = as_uint8_video(video)  # (B, T, H, W, 3)
        batch, context_frames, height, width = frames.shape[:4]
        if (height, width) != self.frame_size:
            raise ValueError(f"video frames are {height}x{width} pixels but the world model works on "
                             f"{self.frame_size[0]}x{self.frame_size[1]}")
        self.latent_frames(context_frames, what="the number of context frames")
        num_frames = self.trained_frames if num_frames is None else num_frames
        t = self.latent_frames(num_frames)
        if num_frames <= context_frames:
            raise ValueError(f"num_frames ({num_frames}) must be more than the {context_frames} context frames")
        if prompt is None and guidance_scale != 1.0:
            raise ValueError("guidance_scale needs a prompt (without one the rollout is unconditional)")
        prompts = as_prompts(prompt, batch)
        context = self.tokenizer.encode(torch.from_numpy(frames).to(self.tokenizer.device)).cpu()  # (B, t0, h, w)
        sampling = SamplingParams(temperature, top_k, top_p)
        codes = self._sample_codes(context, t, prompts, guidance_scale, sampling, generator, speculative,
                                   num_draft_tokens, use_cache, window_stride, window_rule)
        out = self._postprocess(codes, output_type)
        return PhysicsRolloutPipelineOutput(frames=out) if return_dict else (out,)
