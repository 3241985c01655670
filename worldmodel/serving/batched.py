"""Batched decoding for the server: several clips, each with its own prompt, seed and settings, in one KV-cached
loop, and each clip's bytes the same whether it ran alone or beside others.

Same bytes alone or in a batch needs three things:

- every row draws its tokens from its own ``torch.Generator`` (seeded from the request's seed), with its own
  guidance scale and sampling settings, exactly as :func:`~worldmodel.pipelines.sampling.generate_tokens` draws
  for a single video;
- prompts are encoded one request at a time at a fixed padded length, and codes are decoded to frames one clip
  at a time, so no row sees another's shapes;
- the model's arithmetic per row must not depend on the other rows. Two things in the float path do: MKL
  computes a matrix product of 1 to 3 rows with other kernels (another summation order) than one of 4 or more,
  and the MoE sends few tokens through a dense path and many through a per-expert sort whose products have
  as many rows as tokens chose that expert. :func:`batch_invariant_experts` makes every MoE layer run the dense
  path (all experts on every token, weighted by the router: exact, and cheap at decoding sizes) and
  :data:`MIN_ROWS` pads a batch with idle rows to at least 4 model rows.

The result is bit-identical alone and in a batch (``tests/serving/test_batched_identity.py``); it can differ from
``worldmodel generate`` (one video, 1 or 2 model rows, the few-rows kernels) in float rounding, which in rare
cases changes a sampled token.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MethodType
from typing import Any

import numpy as np
import torch

from worldmodel.pipelines.sampling import SamplingParams, guidance_mix, sample_tokens, token_probs, window_step
from worldmodel.video import to_uint8

MIN_ROWS = 4  # MKL's matrix-product kernels from 4 rows on sum in an order that does not depend on the row count

Progress = Callable[[int, int], None]  # (tokens done, tokens in all) of a batch


@dataclass(frozen=True)
class ClipRequest:
    """One clip to generate: a prompt (``""`` = none), a seed, settings, and for rollouts the context frames.

    ``context`` is uint8 ``(T0, H, W, 3)`` at the world model's frame size (``None`` for text to video);
    ``num_frames`` counts the whole output, context included.
    """

    prompt: str
    seed: int
    num_frames: int
    guidance_scale: float = 1.0
    sampling: SamplingParams = SamplingParams()
    context: np.ndarray | None = None
    window_stride: int = 1
    window_rule: str = "reencode"

    @property
    def context_frames(self) -> int:
        """Number of context video frames (0 for text to video)."""
        return 0 if self.context is None else int(self.context.shape[0])

    def batch_key(self) -> tuple[int, int, int, str]:
        """Requests with equal keys share one decoding loop: the same prefix and output lengths and window rule."""
        return self.context_frames, self.num_frames, self.window_stride, self.window_rule


def batch_invariant_experts(world_model: torch.nn.Module) -> None:
    """Make every MoE layer of ``world_model`` compute all experts on every token (for inference only).

    The model's dispatch for many tokens sorts them by expert, so a token's products depend on how many other
    tokens chose the same expert; the dense path (the one the model itself uses for a few decoding tokens)
    weights every expert's output by the router and gives the same result for a token whatever its batch.
    """
    from worldmodel.model.moe import Experts

    for module in world_model.modules():
        if isinstance(module, Experts):
            module.forward = MethodType(Experts._few_tokens, module)


class BatchedDecoder:
    """Generate the clips of a list of :class:`ClipRequest` (equal :meth:`~ClipRequest.batch_key`) in one loop.

    ``pipeline`` is a loaded :class:`~worldmodel.pipelines.base.WorldModelPipeline` (its tokenizer and world
    model are used; the world model's MoE layers are switched to :func:`batch_invariant_experts`).
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.world_model = pipeline.world_model
        self.tokenizer = pipeline.tokenizer
        batch_invariant_experts(self.world_model)
        self._empty_text = self._encode_prompt("")

    @torch.no_grad()
    def __call__(self, requests: list[ClipRequest], progress: Progress | None = None) -> list[np.ndarray]:
        """Uint8 ``(T, H, W, 3)`` frames for each request, in order."""
        if not requests:
            return []
        keys = {r.batch_key() for r in requests}
        if len(keys) != 1:
            raise ValueError("a batch must share context frames, num_frames, window_stride and window_rule, got "
                             f"{sorted(keys)}")
        pipe, wm = self.pipeline, self.world_model
        num_latent = pipe.latent_frames(requests[0].num_frames)
        h, w = wm.config.latent_height, wm.config.latent_width
        guided = any(r.prompt and r.guidance_scale != 1.0 for r in requests)
        idle = max(0, math.ceil(MIN_ROWS / (2 if guided else 1)) - len(requests))
        contexts = [self._encode_context(r, h, w) for r in requests]
        contexts += [torch.zeros_like(contexts[0])] * idle  # idle rows: any codes, no prompt, greedy
        texts = [self._encode_prompt(r.prompt) for r in requests] + [self._empty_text] * idle
        rows = _Rows(requests, idle, guided)
        codes = torch.cat(contexts)  # (B, t0, h, w)
        total = (num_latent - codes.shape[1]) * h * w
        done = 0
        anchor = pipe.window_anchor(requests[0].window_rule)
        while codes.shape[1] < num_latent:  # the sliding window of generate_codes
            prefix, new = window_step(codes, num_latent, wm.config.latent_frames, requests[0].window_stride,
                                      wm.bos_token_id, anchor)  # (B, 1 + keep*h*w)
            tokens = self._continue(prefix, new * h * w, texts, rows,
                                    lambda count, base=done: progress and progress(base + count, total))
            done += new * h * w
            codes = torch.cat([codes, tokens.view(codes.shape[0], new, h, w)], dim=1)
        return [self._decode(codes[i:i + 1]) for i in range(len(requests))]

    def _encode_prompt(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Text states ``(1, L, Dt)`` and mask ``(1, L)`` of one prompt, padded to the model's ``max_text_len``."""
        from worldmodel.tokenizers.text import ByteTokenizer

        length = self.world_model.config.max_text_len
        ids, mask = ByteTokenizer(max_length=length).encode([prompt])
        pad = length - ids.shape[1]
        ids = torch.nn.functional.pad(ids, (0, pad), value=ByteTokenizer.pad_id)
        mask = torch.nn.functional.pad(mask, (0, pad), value=False)
        text = self.world_model.encode_text(ids, mask)
        return text.states, text.mask

    def _encode_context(self, request: ClipRequest, h: int, w: int) -> torch.Tensor:
        """Latent codes ``(1, t0, h, w)`` of a rollout's context frames (``t0 = 0`` for text to video)."""
        if request.context is None:
            return torch.zeros(1, 0, h, w, dtype=torch.long)
        frames = torch.from_numpy(np.ascontiguousarray(request.context))[None].to(self.tokenizer.device)
        return self.tokenizer.encode(frames).cpu()  # (1, t0, h, w)

    def _decode(self, codes: torch.Tensor) -> np.ndarray:
        """Frames uint8 ``(T, H, W, 3)`` of one clip's codes ``(1, t, h, w)``."""
        return to_uint8(self.tokenizer.decode(codes.to(self.tokenizer.device))).cpu().numpy()[0]

    def _continue(self, prefix: torch.Tensor, num_tokens: int, texts: list[tuple[torch.Tensor, torch.Tensor]],
                  rows: _Rows, progress: Callable[[int], None]) -> torch.Tensor:
        """Sample ``num_tokens`` tokens after ``prefix (B, P)``, each row with its own settings -> ``(B, n)``."""
        from worldmodel.model.bridge import TextContext

        wm = self.world_model
        states = torch.cat([s for s, _ in texts] + ([self._empty_text[0]] * len(texts) if rows.guided else []))
        masks = torch.cat([m for _, m in texts] + ([self._empty_text[1]] * len(texts) if rows.guided else []))
        text = TextContext(states, masks)  # (B or 2B, L, Dt): conditional rows, then unconditional ones
        cache = wm.new_cache(states.shape[0])

        def logits_of(ids: torch.Tensor) -> torch.Tensor:
            ids = torch.cat([ids, ids]) if rows.guided else ids
            return wm(ids, text=text, cache=cache, router_stats=False).logits[:, -1]  # (B or 2B, V)

        logits = logits_of(prefix)
        out = []
        for i in range(num_tokens):
            token = rows.sample(logits)  # (B,)
            out.append(token)
            progress(i + 1)
            if i < num_tokens - 1:
                logits = logits_of(token[:, None])
        return torch.stack(out, dim=1)


class _Rows:
    """The per-row sampling state of a batch: guidance scales, sampling settings and generators."""

    def __init__(self, requests: list[ClipRequest], idle: int, guided: bool) -> None:
        self.guided = guided
        self.scales = [r.guidance_scale if r.prompt else 1.0 for r in requests] + [1.0] * idle
        self.sampling = [r.sampling for r in requests] + [SamplingParams(temperature=0.0)] * idle
        self.generators = [torch.Generator().manual_seed(r.seed) for r in requests] + [None] * idle

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        """One token per row from ``logits (B or 2B, V)`` (conditional rows first under guidance) -> ``(B,)``."""
        batch = len(self.scales)
        cond, uncond = logits.float().chunk(2) if self.guided else (logits, None)
        tokens = []
        for i in range(batch):
            row = cond[i:i + 1]  # (1, V)
            if uncond is not None:
                row = guidance_mix(row, uncond[i:i + 1], self.scales[i])
            if self.sampling[i].temperature == 0:
                tokens.append(row.argmax(dim=-1))
            else:
                tokens.append(sample_tokens(token_probs(row, self.sampling[i]), self.generators[i]))
        return torch.cat(tokens)
