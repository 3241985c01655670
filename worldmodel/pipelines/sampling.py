"""Sampling video codes from a causal model: logit filters, classifier-free guidance, KV-cached decoding,
and a sliding window over latent frames for videos longer than the model's context.

The loops here are generic over a :class:`CausalLM`: anything with ``new_cache(batch_size)`` and
``__call__(input_ids, cache) -> logits (B, N, V)``, whose cache has ``length`` and ``crop(n)``.
:class:`GuidedModel` turns a text-conditioned :class:`~worldmodel.model.WorldModel` into one.
Speculative decoding lives in :mod:`worldmodel.pipelines.speculative`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class Cache(Protocol):
    """A KV cache: how many tokens it holds, and a roll-back to fewer."""

    @property
    def length(self) -> int: ...

    def crop(self, length: int) -> None: ...


class CausalLM(Protocol):
    """A next-token model: ``lm(ids (B, N), cache) -> logits (B, N, V)``; with a cache, ``ids`` continue it."""

    def new_cache(self, batch_size: int) -> Cache: ...

    def __call__(self, input_ids: torch.Tensor, cache: Cache | None) -> torch.Tensor: ...


@dataclass(frozen=True)
class SamplingParams:
    """How a next token is drawn from logits.

    ``temperature == 0`` is greedy (argmax); ``top_k`` keeps the k most likely tokens; ``top_p`` keeps the
    smallest set of most likely tokens whose probability reaches p (nucleus sampling).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {self.top_p}")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set the logits outside the top-k / top-p set to -inf (over the last dimension)."""
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the tokens ranked above each one
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # the first token always stays
        logits = torch.empty_like(logits).scatter_(-1, order, sorted_logits)
    return logits


def token_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Next-token distribution ``(..., V)`` after temperature and filters; one-hot at the argmax when greedy."""
    logits = logits.float()
    if params.temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    return filter_logits(logits / params.temperature, params.top_k, params.top_p).softmax(dim=-1)


def sample_tokens(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of ``probs (B, V)`` -> ``(B,)``."""
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def guidance_mix(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: ``uncond + scale * (cond - uncond)``.

    Written as ``cond + (scale - 1) * (cond - uncond)`` (the same value), so that ``scale == 1`` returns the
    conditional logits bit for bit.
    """
    return cond + (scale - 1.0) * (cond - uncond)


class GuidedModel:
    """A world model with its text context (and optional classifier-free guidance) seen as a :class:`CausalLM`.

    ``text`` is ``None`` (unconditional), or a ``TextContext`` with one row per video, or, when
    ``guidance_scale != 1``, with ``2 * B`` rows: the ``B`` conditional rows first, then ``B`` unconditional
    ones (an all-False mask). Both halves run in one batch and their logits are mixed by
    :func:`guidance_mix`.
    """

    def __init__(self, model: Any, text: Any = None, guidance_scale: float = 1.0) -> None:
        self.model = model
        self.text = text
        self.guidance_scale = guidance_scale
        self.guided = text is not None and guidance_scale != 1.0

    def new_cache(self, batch_size: int) -> Cache:
        """A fresh cache for ``batch_size`` videos (twice the rows under guidance)."""
        return self.model.new_cache(2 * batch_size if self.guided else batch_size)

    def __call__(self, input_ids: torch.Tensor, cache: Cache | None) -> torch.Tensor:
        """Logits ``(B, N, V)`` for ``input_ids (B, N)``."""
        if self.guided:
            input_ids = torch.cat([input_ids, input_ids])  # (2B, N): conditional rows, then unconditional
        logits = self.model(input_ids, text=self.text, cache=cache, router_stats=False).logits
        if not self.guided:
            return logits
        cond, uncond = logits.float().chunk(2)
        return guidance_mix(cond, uncond, self.guidance_scale)


@dataclass
class DecodeOptions:
    """Everything about how tokens are decoded, apart from the model and the prompt.

    ``draft`` (a smaller :class:`CausalLM` over the same codes) turns on speculative decoding with
    ``num_draft_tokens`` proposals per round; ``use_cache=False`` recomputes the whole sequence at every
    step (slow; for tests and benchmarks). ``progress`` is anything with ``update(n)`` (a tqdm bar).
    """

    sampling: SamplingParams = field(default_factory=SamplingParams)
    generator: torch.Generator | None = None
    use_cache: bool = True
    draft: CausalLM | None = None
    num_draft_tokens: int = 4
    progress: Any = None

    def __post_init__(self) -> None:
        if self.draft is not None and not self.use_cache:
            raise ValueError("speculative decoding (a draft model) needs use_cache=True")
        if self.num_draft_tokens < 1:
            raise ValueError(f"num_draft_tokens must be >= 1, got {self.num_draft_tokens}")


@torch.no_grad()
def generate_tokens(lm: CausalLM, prefix: torch.Tensor, num_tokens: int, sampling: SamplingParams,
                    generator: torch.Generator | None = None, use_cache: bool = True,
                    progress: Any = None) -> torch.Tensor:
    """Autoregressively sample ``num_tokens`` tokens after ``prefix (B, P)`` -> ``(B, num_tokens)``.

    With ``use_cache`` the prefix is prefilled once and each new token costs one single-token forward;
    without it the whole sequence is recomputed at every step. Both draw the same random numbers.
    """
    cache = lm.new_cache(prefix.shape[0]) if use_cache else None
    seq = prefix  # (B, P)
    logits = lm(prefix, cache)[:, -1]  # (B, V)
    out = []
    for i in range(num_tokens):
        if sampling.temperature == 0:  # greedy: the argmax (what sampling the one-hot would draw)
            token = logits.argmax(dim=-1)  # (B,)
        else:
            token = sample_tokens(token_probs(logits, sampling), generator)  # (B,)
        out.append(token)
        if progress is not None:
            progress.update(1)
        if i == num_tokens - 1:
            break
        if use_cache:
            logits = lm(token[:, None], cache)[:, -1]
        else:
            seq = torch.cat([seq, token[:, None]], dim=1)
            logits = lm(seq, None)[:, -1]
    return torch.stack(out, dim=1) if out else prefix.new_zeros(prefix.shape[0], 0)


def continue_tokens(lm: CausalLM, prefix: torch.Tensor, num_tokens: int, options: DecodeOptions) -> torch.Tensor:
    """Sample ``num_tokens`` tokens after ``prefix (B, P)`` plainly or speculatively, as ``options`` say."""
    if options.draft is None:
        return generate_tokens(lm, prefix, num_tokens, options.sampling, options.generator, options.use_cache,
                               options.progress)
    from worldmodel.pipelines.speculative import speculative_generate

    tokens, _ = speculative_generate(lm, options.draft, prefix, num_tokens, options.sampling,
                                     options.num_draft_tokens, options.generator, options.progress)
    return tokens


WINDOW_RULES = ("reencode", "shift")  # how a sliding window starts: see window_step


def window_step(codes: torch.Tensor, num_frames: int, max_frames: int, window_stride: int, bos_token_id: int,
                anchor: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> tuple[torch.Tensor, int]:
    """The next step of the sliding window over latent ``codes (B, n, h, w)``: ``(prefix (B, 1 + keep*h*w), new)``.

    Until the window is full the prefix is BOS + every code and ``new`` fills it. Once it is full the window keeps
    ``keep = max_frames - window_stride`` latent frames and generates ``new <= window_stride``. The kept frames are
    ``codes[:, -keep:]`` as they are (rule ``shift``, ``anchor=None``) or ``anchor(codes, keep)``: the same frames
    re-encoded from pixels (rule ``reencode``), so that the window's first latent frame is a single video frame,
    as it is in every training clip of a causal tokenizer (a kept latent frame stands for ``tc`` frames).
    """
    batch, n = codes.shape[:2]
    keep = n if n < max_frames else max_frames - window_stride
    new = min(num_frames - n, max_frames - keep)
    window = codes[:, n - keep:] if anchor is None or n < max_frames else anchor(codes, keep)
    bos = torch.full((batch, 1), bos_token_id, dtype=torch.long, device=codes.device)
    return torch.cat([bos, window.reshape(batch, -1)], dim=1), new


def generate_codes(lm: CausalLM, context: torch.Tensor, num_frames: int, max_frames: int, bos_token_id: int,
                   options: DecodeOptions, window_stride: int = 1,
                   anchor: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> torch.Tensor:
    """Continue latent codes ``context (B, t0, h, w)`` to ``(B, num_frames, h, w)`` (``t0`` may be 0).

    The model sees at most ``max_frames`` latent frames (BOS + raster-order codes). Longer videos slide a
    window (:func:`window_step`): the kept frames are prefilled into a fresh cache as the window's start
    (re-encoded by ``anchor`` when given), and ``window_stride`` new frames are generated.
    """
    batch, t0, h, w = context.shape
    if num_frames <= t0:
        raise ValueError(f"num_frames ({num_frames} latent frames) must exceed the context's {t0} latent frames")
    if num_frames > max_frames and not 1 <= window_stride < max_frames:
        raise ValueError(f"window_stride must be in [1, {max_frames - 1}] (the model holds {max_frames} latent "
                         f"frames), got {window_stride}")
    codes = context
    while codes.shape[1] < num_frames:
        prefix, new = window_step(codes, num_frames, max_frames, window_stride, bos_token_id, anchor)
        tokens = continue_tokens(lm, prefix, new * h * w, options)  # (B, new*h*w)
        codes = torch.cat([codes, tokens.view(batch, new, h, w)], dim=1)
    return codes
