"""Text to video: sample video codes from the world model given a prompt, then decode them to frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.utils import BaseOutput

from worldmodel.pipelines.base import WorldModelPipeline, as_prompts, check_output_type
from worldmodel.pipelines.sampling import SamplingParams


@dataclass
class TextToVideoPipelineOutput(BaseOutput):
    """``frames``: uint8 numpy ``(B, T, H, W, 3)`` ("np"), uint8 tensor ("pt"), lists of PIL images ("pil"),
    or the codes ``LongTensor (B, t, h, w)`` ("latent"); ``B = len(prompts) * num_videos_per_prompt``."""

    frames: Any


class TextToVideoPipeline(WorldModelPipeline):
    """Generate videos from text prompts with the world model (autoregressive over latent codes).

    Example::

        pipe = TextToVideoPipeline.from_checkpoint()  # the packaged default, or a folder
        video = pipe("a red ball falls and bounces", generator=torch.Generator().manual_seed(0)).frames[0]
    """

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None, num_frames: int | None = None, guidance_scale: float = 3.0,
                 temperature: float = 1.0, top_k: int | None = 5, top_p: float | None = None,
                 generator: torch.Generator | None = None, num_videos_per_prompt: int = 1,
                 output_type: str = "np", speculative: bool | str = False, num_draft_tokens: int = 4,
                 use_cache: bool = True, window_stride: int = 1, window_rule: str = "reencode",
                 return_dict: bool = True) -> TextToVideoPipelineOutput | tuple:
        """Generate ``num_videos_per_prompt`` videos per prompt.

        Args:
            prompt: a prompt or a list of prompts (at most the world model's ``max_text_len`` bytes each);
                ``None`` generates unconditionally (guidance then has nothing to compare and is ignored). An
                empty or whitespace-only prompt is refused.
            num_frames: video frames, ``1 + tc * k``; default: the world model's training length. Longer
                videos slide a window over latent frames (``window_stride`` latent frames per step); by
                ``window_rule`` ``"reencode"`` (default) the kept frames are re-encoded from their pixels so the
                window starts on a single-frame latent as in training, ``"shift"`` keeps their codes as they are.
            guidance_scale: classifier-free guidance ``uncond + s * (cond - uncond)``; 1 disables it.
            temperature, top_k, top_p: sampling; ``temperature=0`` is greedy. The defaults (guidance 3,
                temperature 1, top-k 5) are the settings measured best for text adherence on ``val`` captions.
            generator: a ``torch.Generator`` on the model's device: the same seed gives the same video.
            output_type: "np", "pt", "pil" or "latent" (see :class:`TextToVideoPipelineOutput`).
            speculative: propose ``num_draft_tokens`` tokens at a time and verify them in one forward (the output
                is distributed exactly as without): ``True`` / ``"draft"`` with the draft model, ``"frame"``
                by copying the previous latent frame's codes (no draft model needed).
            use_cache: KV-cached decoding (``False`` recomputes every step: only for comparisons).
        """
        check_output_type(output_type)
        if not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise ValueError(f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}")
        prompts = None if prompt is None else [p for p in as_prompts(prompt) for _ in range(num_videos_per_prompt)]
        num_frames = self.trained_frames if num_frames is None else num_frames
        t = self.latent_frames(num_frames)
        h, w = self.world_model.config.latent_height, self.world_model.config.latent_width
        batch = num_videos_per_prompt if prompts is None else len(prompts)
        context = torch.zeros(batch, 0, h, w, dtype=torch.long)  # nothing to continue
        sampling = SamplingParams(temperature, top_k, top_p)
        codes = self._sample_codes(context, t, prompts, guidance_scale, sampling, generator, speculative,
                                   num_draft_tokens, use_cache, window_stride, window_rule)
        frames = self._postprocess(codes, output_type)
        return TextToVideoPipelineOutput(frames=frames) if return_dict else (frames,)
