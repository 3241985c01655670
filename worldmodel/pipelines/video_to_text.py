"""Video to text: the world model reads a clip's codes and describes it or answers a question about it.

Layout (docs/sequence-layout.md): ``[BOS] codes [TXT] answer bytes [EOS]``, the question (or "describe the video")
through the bridge. Answers to template questions (:mod:`worldmodel.understanding.questions`) are chosen among the
template's closed answer set by the model's likelihood of each (bytes and EOS), so they are never garbage; a
question no template matches gets "cannot answer" without running the model. A predictive question asked from the
first frames can also be answered by imagining first (``imagine=n``): the world model continues the context's codes
to its full length (greedy for one future, sampled for several), then reads the question off the imagined clip,
each answer scored by its likelihood averaged over the futures. Descriptions are decoded greedily,
byte by byte with the KV cache, until EOS or the byte limit, restricted to printable ASCII (the description
vocabulary is ASCII; so the text is always valid UTF-8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.utils import BaseOutput

from worldmodel.model.text_output import EOS_CLASS, IGNORE, understanding_batch
from worldmodel.pipelines.base import WorldModelPipeline, as_uint8_video
from worldmodel.pipelines.sampling import SamplingParams
from worldmodel.understanding import CANNOT_ANSWER, parse_question
from worldmodel.understanding.questions import answer_set, render_question

DESCRIBE_PROMPT = "describe the video"  # as in training (worldmodel.datasets.understanding_data)
PRINTABLE = range(32, 127)  # the bytes a description may hold
MAX_FUTURES = 16  # imagined continuations one answer may average over
NO_UNDERSTANDING = ("this checkpoint's world model was trained without video understanding (its config has no "
                    "text_output); use a checkpoint trained with text_output: true and understanding examples")


@dataclass
class VideoToTextPipelineOutput(BaseOutput):
    """``text``: the description or the answer; ``question``: the question as asked (None for a description);
    ``template``: the template it matched (None: a description, or no template); ``frames``: the video frames the
    model read; ``notes``: what was done to the video (resized, cut) or why there is no answer."""

    text: str
    question: str | None = None
    template: str | None = None
    frames: int = 0
    notes: list[str] = field(default_factory=list)


class VideoToTextPipeline(WorldModelPipeline):
    """Describe videos and answer questions about them with a world model trained with text output.

    Example::

        pipe = VideoToTextPipeline.from_checkpoint("outputs/pipeline")
        pipe.describe("episode.mkv").text      # "balls: small red, ... events: f7 red bounce right wall."
        pipe.ask("episode.mkv", "will the red and blue balls collide?", context_frames=5).text   # "yes"
    """

    @torch.no_grad()
    def __call__(self, video: str | os.PathLike | np.ndarray | torch.Tensor, question: str | None = None,
                 context_frames: int | None = None, imagine: int = 0, seed: int = 0) -> VideoToTextPipelineOutput:
        """``describe(video)`` without a question, else ``ask(video, question, context_frames, imagine, seed)``."""
        if question is None:
            if context_frames is not None or imagine:
                raise ValueError("context_frames and imagine are for questions; a description reads the whole video")
            return self.describe(video)
        return self.ask(video, question, context_frames, imagine, seed)

    @torch.no_grad()
    def describe(self, video: str | os.PathLike | np.ndarray | torch.Tensor) -> VideoToTextPipelineOutput:
        """Describe a video (a file path or uint8 frames ``(T, H, W, 3)``): balls, motion, gravity, events."""
        self._check_text_output()
        frames, notes = self.prepare_video(video)
        codes = self._codes(frames)
        text, finished = self._greedy(codes, DESCRIBE_PROMPT)
        if not finished:
            notes.append(f"the description stopped at the limit of {len(text)} bytes")
        return VideoToTextPipelineOutput(text=text, frames=len(frames), notes=notes)

    @torch.no_grad()
    def ask(self, video: str | os.PathLike | np.ndarray | torch.Tensor, question: str,
            context_frames: int | None = None, imagine: int = 0, seed: int = 0) -> VideoToTextPipelineOutput:
        """Answer a question about a video; with ``context_frames`` the model sees only the first frames (``1 +
        tc * k``), as for predictive questions ("will the red and blue balls collide?"). Without it every frame is
        the context. The answer is the most likely one of the template's answer set, or "cannot answer".

        ``imagine=n`` (predictive questions with ``context_frames``): first continue the context to the model's
        full length, ``n`` times (one greedy future; several sampled ones, seeded by ``seed``), then read the
        answer off the imagined clips (a model trained with ``read_share`` reads predictive questions off whole
        clips); the futures of one context are kept, so further questions about it reuse them."""
        self._check_text_output()
        if not isinstance(question, str) or not question.strip():
            raise ValueError("the question is empty: ask something about the video, e.g. 'how many balls are there?'")
        if isinstance(imagine, bool) or not isinstance(imagine, int) or not 0 <= imagine <= MAX_FUTURES:
            raise ValueError(f"imagine must be a whole number of futures from 0 (answer from the frames given) to "
                             f"{MAX_FUTURES}, got {imagine!r}")
        frames, notes = self.prepare_video(video, context_frames)
        parsed = parse_question(question)
        if parsed is None:
            notes.append("the question matches none of the question templates the model was trained on")
            return VideoToTextPipelineOutput(text=CANNOT_ANSWER, question=question, frames=len(frames), notes=notes)
        if parsed.predictive and context_frames is None:
            notes.append("a question about what will happen, read with every frame as context (give context_frames "
                         "to ask from the first frames only)")
        codes = self._codes(frames)[None]  # (1, n)
        if imagine and parsed.predictive and context_frames is not None and len(frames) < self.trained_frames:
            codes = self._imagine(frames, imagine, seed)  # (futures, N)
            notes.append(f"answered from {imagine} imagined continuation{'s' if imagine > 1 else ''} of the "
                         f"{len(frames)} frames to {self.trained_frames}")
        text = self._choose(codes, render_question(parsed), answer_set(parsed))
        return VideoToTextPipelineOutput(text=text, question=question, template=parsed.type, frames=len(frames),
                                         notes=notes)

    # ------------------------------------------------------------------------------------------------- video
    def _check_text_output(self) -> None:
        if not self.world_model.config.text_output:
            raise ValueError(NO_UNDERSTANDING)

    def prepare_video(self, video: str | os.PathLike | np.ndarray | torch.Tensor,
                      context_frames: int | None = None) -> tuple[np.ndarray, list[str]]:
        """The frames the model reads, uint8 ``(T, H, W, 3)``, and notes on what was changed: frames of another
        size resized (shorter side) and centre-cropped; more frames than the model reads cut to the first ``1 + tc
        * k`` of them (``context_frames`` of them when given). A corrupt file is refused with one sentence."""
        from worldmodel.video import read_video

        frames = read_video(video) if isinstance(video, str | os.PathLike) else as_uint8_video(video)
        if frames.ndim == 5:
            if frames.shape[0] != 1:
                raise ValueError(f"give one video at a time, got a batch of {frames.shape[0]}")
            frames = frames[0]
        notes = self._fit_size(frames)
        if notes:
            frames = self._resize(frames)
        tc, longest, total = self.tokenizer.config.temporal_compression, self.trained_frames, len(frames)
        if context_frames is not None:
            if isinstance(context_frames, bool) or not isinstance(context_frames, int) or context_frames < 1 or (
                    context_frames - 1) % tc or context_frames > min(longest, total):
                raise ValueError(f"context_frames must be 1 + {tc} * k frames, at most the {min(longest, total)} "
                                 f"frames this model reads of this video, got {context_frames!r}")
            return frames[:context_frames], notes
        usable = 1 + tc * ((min(total, longest) - 1) // tc)
        if usable < total:
            notes.append(f"kept the first {usable} of the video's {total} frames (the model reads 1 + {tc} k frames, "
                         f"at most {longest})")
        return frames[:usable], notes

    def _fit_size(self, frames: np.ndarray) -> list[str]:
        """A note when the frames are not the model's size (empty when they are)."""
        height, width = self.frame_size
        if frames.shape[1:3] == (height, width):
            return []
        if height != width:
            raise ValueError(f"video frames are {frames.shape[1]}x{frames.shape[2]} pixels but this world model reads "
                             f"{height}x{width}; only square models resize videos")
        return [f"resized the {frames.shape[2]}x{frames.shape[1]} frames (shorter side to {height} px, centre crop) "
                f"to the {width}x{height} the model reads"]

    def _resize(self, frames: np.ndarray) -> np.ndarray:
        """Frames resized as the user-video clips are (worldmodel.datasets.clips) -> uint8 ``(T, H, W, 3)``."""
        from PIL import Image

        from worldmodel.datasets.clips import _square

        return np.stack([_square(Image.fromarray(frame), self.frame_size[0]) for frame in frames])

    def _codes(self, frames: np.ndarray) -> torch.Tensor:
        """Video codes ``(n,)`` in raster order (t, h, w) of uint8 frames ``(T, H, W, 3)``."""
        video = torch.from_numpy(np.ascontiguousarray(frames))[None].to(self.tokenizer.device)  # (1, T, H, W, 3)
        return self.tokenizer.encode(video).reshape(-1).cpu()  # (t * h * w,)

    def _imagine(self, frames: np.ndarray, futures: int, seed: int) -> torch.Tensor:
        """Codes ``(futures, N)`` of the context ``frames`` continued to the model's full length (greedy for one
        future, sampled at temperature 1 for several); the last context's futures are kept for the next question."""
        video = torch.from_numpy(np.ascontiguousarray(frames))[None].to(self.tokenizer.device)  # (1, T, H, W, 3)
        context = self.tokenizer.encode(video).cpu()  # (1, t0, h, w)
        key = (context.numpy().tobytes(), futures, seed)
        if getattr(self, "_futures", (None, None))[0] == key:
            return self._futures[1]
        generator = torch.Generator(device=self.world_model.device).manual_seed(seed)
        sampling = SamplingParams(temperature=0.0 if futures == 1 else 1.0)
        t = self.world_model.config.latent_frames
        codes = self._sample_codes(context.repeat(futures, 1, 1, 1), t, None, 1.0, sampling, generator, False,
                                   4, True, 1)  # (futures, t, h, w)
        self._futures = (key, codes.reshape(futures, -1).cpu())
        return self._futures[1]

    # ------------------------------------------------------------------------------------------------- text
    def _greedy(self, codes: torch.Tensor, prompt: str) -> tuple[str, bool]:
        """Greedy printable-ASCII decoding after ``[BOS] codes [TXT]`` with the KV cache -> (text, ended by EOS)."""
        model, vocab = self.world_model, self.world_model.vocab
        ids, start, _ = understanding_batch([codes], [b""], vocab, model.config.answer_pauses)  # [BOS] codes [TXT]..
        ids, start = ids.to(model.device), start.to(model.device)
        text = self._text_context(model, [prompt], 1.0)
        mask = torch.full((EOS_CLASS + 1,), float("-inf"), device=model.device)
        mask[list(PRINTABLE) + [EOS_CLASS]] = 0.0
        cache = model.new_cache(1)
        logits = model(ids, text, cache, router_stats=False, text_start=start).text_logits[0, -1]  # (257,)
        out, room = bytearray(), model.max_seq_len - ids.shape[1]  # room: answer bytes the sequence holds
        while True:
            cls = int((logits.float() + mask).argmax())
            if cls == EOS_CLASS or len(out) == room:
                return out.decode("ascii"), cls == EOS_CLASS
            out.append(cls)
            step = torch.tensor([[vocab.byte_id(cls)]], device=model.device)
            logits = model(step, text, cache, router_stats=False, text_start=start).text_logits[0, -1]

    def _choose(self, codes: torch.Tensor, prompt: str, candidates: tuple[str, ...]) -> str:
        """The candidate answer of highest likelihood (its bytes, then EOS) after ``[BOS] codes [TXT]``, for code
        rows ``(F, n)`` (F imagined futures, or the clip itself): the likelihood averaged over the rows."""
        model = self.world_model
        futures, n = codes.shape
        room = model.max_seq_len - n - 2 - model.config.answer_pauses
        fitting = [c for c in candidates if len(c.encode("utf-8")) <= room]
        if not fitting:
            raise ValueError(f"this world model's max_answer_len leaves {room} answer bytes, too few for any answer")
        rows = [row for row in codes for _ in fitting]  # future-major: (F * C) rows
        ids, start, targets = understanding_batch(rows, [c.encode() for c in fitting] * futures, model.vocab,
                                                  model.config.answer_pauses)
        text = self._text_context(model, [prompt] * len(rows), 1.0)
        out = model(ids.to(model.device), text, router_stats=False, text_start=start.to(model.device))
        logp = out.text_logits.float().log_softmax(-1).cpu()  # (F * C, L, 257)
        picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]  # (F * C, L)
        scores = picked.masked_fill(targets == IGNORE, 0.0).sum(dim=1).reshape(futures, len(fitting))  # (F, C)
        return fitting[int(scores.logsumexp(dim=0).argmax())]

