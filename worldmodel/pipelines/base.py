"""What the two pipelines share: components, checkpoint folders, text conditioning, decoding and output.

A checkpoint is one folder written by ``save_pretrained``::

    model_index.json          which component class lives in which sub-folder
    tokenizer/                VideoTokenizer: config.json + diffusion_pytorch_model.safetensors
    world_model/              WorldModel:     config.json + diffusion_pytorch_model.safetensors
    draft_model/              optional smaller WorldModel for speculative decoding

Both :class:`~worldmodel.pipelines.TextToVideoPipeline` and
:class:`~worldmodel.pipelines.PhysicsRolloutPipeline` load the same folder.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline

from worldmodel.io import read_json
from worldmodel.pipelines.limits import MAX_GUIDANCE, check_num_frames, max_frames
from worldmodel.pipelines.sampling import WINDOW_RULES, DecodeOptions, GuidedModel, SamplingParams, generate_codes
from worldmodel.pipelines.speculative import FrameCopyDraft
from worldmodel.video import to_uint8

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "default"
OUTPUT_TYPES = ("np", "pt", "pil", "latent")


class CheckpointError(FileNotFoundError):
    """A checkpoint folder is missing or incomplete."""


def check_checkpoint(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a complete pipeline folder; raise :class:`CheckpointError` naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint folder {path} does not exist (expected a folder written by "
                              "save_pretrained with model_index.json, tokenizer/ and world_model/)")
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise CheckpointError(f"checkpoint folder {path} is incomplete: missing model_index.json")
    index = read_json(index_file, CheckpointError)
    components = ["tokenizer", "world_model"]
    draft = index.get("draft_model")
    if isinstance(draft, list) and draft and draft[0] is not None:
        components.append("draft_model")
    for name in components:
        entry = index.get(name)
        if not (isinstance(entry, list) and len(entry) == 2 and str(entry[0]).startswith("worldmodel.")):
            raise CheckpointError(f"checkpoint folder {path}: model_index.json must name a worldmodel class for "
                                  f"{name!r}, got {entry!r}")
    missing = []
    for name in components:
        if not (path / name / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if not any((path / name).glob("*.safetensors")):
            missing.append(f"{name}/diffusion_pytorch_model.safetensors")
    if missing:
        raise CheckpointError(f"checkpoint folder {path} is incomplete: missing {', '.join(missing)}")
    return path


@dataclass(frozen=True)
class CheckpointLimits:
    """What a pipeline folder can make, read from its config files without loading any weights."""

    codebook_size: int
    temporal_compression: int
    trained_frames: int
    max_frames: int


def read_limits(checkpoint: str | os.PathLike | None) -> CheckpointLimits:
    """The :class:`CheckpointLimits` of a complete pipeline folder (``None``: the packaged default), so that
    arguments can be checked before the models load."""
    from worldmodel.pretrained import PretrainedFolderError, check_pretrained_folder

    path = check_checkpoint(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
    configs = {}
    for name, class_name in (("tokenizer", "VideoTokenizer"), ("world_model", "WorldModel")):
        try:
            check_pretrained_folder(path / name, class_name)
        except PretrainedFolderError as err:
            raise CheckpointError(f"checkpoint folder {path}: {err}") from err
        configs[name] = json.loads((path / name / "config.json").read_text(encoding="utf-8"))
    try:
        tc = int(configs["tokenizer"]["temporal_compression"])
        latent = int(configs["world_model"]["latent_frames"])
        codebook = int(configs["world_model"]["codebook_size"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint folder {path}: a config.json lacks {err} or holds a non-integer") from err
    return CheckpointLimits(codebook, tc, 1 + tc * (latent - 1), max_frames(tc, latent))


def check_weights(path: Path, pipeline: Any) -> None:
    """Raise :class:`CheckpointError` when a component's saved weights miss tensors its class needs.

    diffusers only warns and initialises such tensors at random, which would silently give noise.
    """
    from safetensors import safe_open

    for name in ("tokenizer", "world_model", "draft_model"):
        module = getattr(pipeline, name, None)
        if module is None:
            continue
        saved: set[str] = set()
        for file in (path / name).glob("*.safetensors"):
            with safe_open(str(file), "pt") as handle:
                saved |= set(handle.keys())
        missing = sorted(set(module.state_dict()) - saved)
        if missing:
            raise CheckpointError(f"checkpoint folder {path}: {name} lacks {len(missing)} weight tensors that "
                                  f"{type(module).__name__} needs (e.g. {missing[0]}); the folder was saved by "
                                  "an incompatible version or is damaged")


class WorldModelPipeline(DiffusionPipeline):
    """Base of the generation pipelines: a video tokenizer, a world model and an optional draft model.

    Components are put in eval mode. ``draft_model`` must share the world model's codebook; it is only
    used when a call asks for ``speculative=True`` (``speculative="frame"`` needs no draft model).
    """

    _optional_components = ["draft_model"]

    def __init__(self, tokenizer: Any, world_model: Any, draft_model: Any = None) -> None:
        super().__init__()
        codebook = world_model.config.codebook_size
        if tokenizer.codebook_size != codebook:
            raise ValueError(f"the tokenizer has {tokenizer.codebook_size} codes but the world model predicts "
                             f"{codebook}: they were not trained together")
        if draft_model is not None and draft_model.config.codebook_size != codebook:
            raise ValueError(f"the draft model predicts {draft_model.config.codebook_size} codes, the world model "
                             f"{codebook}: a draft must share the codebook")
        self.register_modules(tokenizer=tokenizer, world_model=world_model, draft_model=draft_model)
        self.set_progress_bar_config(desc="decoding", unit="token")
        for module in (tokenizer, world_model, draft_model):
            if module is not None:
                module.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | None = None, **kwargs: Any) -> WorldModelPipeline:
        """Load a pipeline folder offline, after checking it is complete; ``None`` loads the packaged default."""
        from diffusers.utils import logging as diffusers_logging

        from worldmodel.pretrained import PretrainedFolderError, check_pretrained_folder, check_weights_fit

        path = check_checkpoint(DEFAULT_CHECKPOINT if checkpoint is None else checkpoint)
        index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
        for name in ("tokenizer", "world_model", "draft_model"):
            if isinstance(index.get(name), list) and index[name][0] is not None:
                module_name, class_name = index[name]
                component = getattr(importlib.import_module(module_name), class_name, None)  # diffusers needs it
                if component is None:
                    raise CheckpointError(f"checkpoint folder {path}: model_index.json names {module_name}."
                                          f"{class_name} for {name!r}, which this version of worldmodel lacks")
                try:
                    check_weights_fit(component, path / name, check_pretrained_folder(path / name, class_name))
                except PretrainedFolderError as err:
                    raise CheckpointError(f"checkpoint folder {path}: {err}") from err
        kwargs = {"local_files_only": True, "low_cpu_mem_usage": False, **kwargs}
        bar_was_on = diffusers_logging.is_progress_bar_enabled()
        diffusers_logging.disable_progress_bar()  # loading two or three local files needs no progress bar
        try:
            pipeline = cls.from_pretrained(str(path), **kwargs)
        finally:
            if bar_was_on:
                diffusers_logging.enable_progress_bar()
        check_weights(path, pipeline)
        return pipeline

    # ----------------------------------------------------------------------------------------------- sizes
    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of the videos the world model was trained on."""
        sc = self.tokenizer.config.spatial_compression
        return self.world_model.config.latent_height * sc, self.world_model.config.latent_width * sc

    @property
    def trained_frames(self) -> int:
        """Number of video frames of the world model's full context (its training clip length)."""
        return self.tokenizer.num_frames(self.world_model.config.latent_frames)

    @property
    def max_frames(self) -> int:
        """The longest video this pipeline makes: ``MAX_LENGTH_FACTOR`` times its training length (a sliding window)."""
        return max_frames(self.tokenizer.config.temporal_compression, self.world_model.config.latent_frames)

    def latent_frames(self, num_frames: int, what: str = "num_frames") -> int:
        """Latent frame count of ``num_frames`` video frames; a clear error when they cannot be produced."""
        check_num_frames(num_frames, self.tokenizer.config.temporal_compression, self.max_frames, what)
        return 1 + (num_frames - 1) // self.tokenizer.config.temporal_compression

    # ------------------------------------------------------------------------------------------- sampling
    def _text_context(self, model: Any, prompts: list[str] | None, guidance_scale: float) -> Any:
        """``TextContext`` of ``prompts`` for ``model`` (with unconditional rows appended under guidance)."""
        if prompts is None:
            return None
        from worldmodel.tokenizers.text import ByteTokenizer

        texts = list(prompts) + ([""] * len(prompts) if guidance_scale != 1.0 else [])
        ids, mask = ByteTokenizer(max_length=model.config.max_text_len).encode(texts)
        return model.encode_text(ids.to(model.device), mask.to(model.device))

    def _sample_codes(self, context: torch.Tensor, num_latent_frames: int, prompts: list[str] | None,
                      guidance_scale: float, sampling: SamplingParams, generator: torch.Generator | None,
                      speculative: bool | str, num_draft_tokens: int, use_cache: bool,
                      window_stride: int, window_rule: str = "reencode") -> torch.Tensor:
        """Continue ``context (B, t0, h, w)`` to ``num_latent_frames`` latent frames with the world model."""
        world_model = self.world_model
        _, t0, h, w = context.shape
        grid = (world_model.config.latent_height, world_model.config.latent_width)
        if (h, w) != grid:
            height, width = self.frame_size
            raise ValueError(f"the video's code grid is {h}x{w} but the world model generates {grid[0]}x{grid[1]} "
                             f"(frames of {height}x{width} pixels)")
        check_sampling(guidance_scale, sampling, world_model.config.codebook_size)
        draft = self._draft(speculative, prompts, guidance_scale, h * w)
        target = GuidedModel(world_model, self._text_context(world_model, prompts, guidance_scale), guidance_scale)
        with torch.no_grad(), self.progress_bar(total=(num_latent_frames - t0) * h * w) as bar:  # tokens per video
            options = DecodeOptions(sampling, generator, use_cache, draft, num_draft_tokens, bar)
            return generate_codes(target, context.to(world_model.device), num_latent_frames,
                                  world_model.config.latent_frames, world_model.bos_token_id, options, window_stride,
                                  self.window_anchor(window_rule))

    def window_anchor(self, window_rule: str) -> Callable[[torch.Tensor, int], torch.Tensor] | None:
        """The sliding window's start for ``window_rule`` (:data:`~worldmodel.pipelines.sampling.WINDOW_RULES`):
        :meth:`reencode_window` for ``"reencode"``, ``None`` (the kept codes as they are) for ``"shift"``."""
        if window_rule not in WINDOW_RULES:
            raise ValueError(f"window_rule must be one of {', '.join(WINDOW_RULES)}, got {window_rule!r}")
        return self.reencode_window if window_rule == "reencode" else None

    def reencode_window(self, codes: torch.Tensor, keep: int) -> torch.Tensor:
        """The last ``keep`` latent frames of ``codes (B, t, h, w)`` re-encoded from their pixels: the clip is decoded,
        its last ``1 + tc * (keep - 1)`` frames encoded again (one clip at a time, so any batch gives the same
        codes), so that the first kept latent frame is one video frame as in training."""
        frames = 1 + self.tokenizer.config.temporal_compression * (keep - 1)
        rows = []
        with torch.no_grad():
            for row in codes:
                video = to_uint8(self.tokenizer.decode(row[None].to(self.tokenizer.device)))  # (1, T, H, W, 3)
                rows.append(self.tokenizer.encode(video[:, -frames:]).to(codes.device))  # (1, keep, h, w)
        return torch.cat(rows)

    def _draft(self, speculative: bool | str, prompts: list[str] | None, guidance_scale: float,
               tokens_per_frame: int) -> Any:
        """The draft for speculative decoding: ``True``/``"draft"`` the draft model, ``"frame"`` a frame copy."""
        if speculative is False or speculative is None:
            return None
        if speculative == "frame":
            return FrameCopyDraft(tokens_per_frame, self.world_model.config.codebook_size)
        if speculative is True or speculative == "draft":
            if self.draft_model is None:
                raise ValueError("speculative decoding with a draft model needs a draft_model, and this pipeline "
                                 "has none (speculative='frame' needs none)")
            text = self._text_context(self.draft_model, prompts, guidance_scale)
            return GuidedModel(self.draft_model, text, guidance_scale)
        raise ValueError(f"speculative must be False, True / 'draft' (the draft model) or 'frame' (copy the previous "
                         f"latent frame), got {speculative!r}")

    # --------------------------------------------------------------------------------------------- output
    def _postprocess(self, codes: torch.Tensor, output_type: str) -> Any:
        """Decode codes ``(B, t, h, w)`` to the requested output type."""
        if output_type == "latent":
            return codes
        with torch.no_grad():
            video = to_uint8(self.tokenizer.decode(codes.to(self.tokenizer.device))).cpu()  # (B, T, H, W, 3)
        if output_type == "pt":
            return video
        if output_type == "pil":
            from PIL import Image

            return [[Image.fromarray(frame) for frame in clip] for clip in video.numpy()]
        return video.numpy()


def check_sampling(guidance_scale: float, sampling: SamplingParams, codebook_size: int) -> None:
    """Raise a clear ``ValueError`` for a guidance scale or sampling setting outside its valid range."""
    if not (isinstance(guidance_scale, int | float) and 0 <= guidance_scale <= MAX_GUIDANCE):
        raise ValueError(f"guidance_scale must be a number from 0 to {MAX_GUIDANCE} (1 = no guidance), "
                         f"got {guidance_scale!r}")
    if not math.isfinite(sampling.temperature):
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {sampling.temperature}")
    if sampling.top_k is not None and not 1 <= sampling.top_k <= codebook_size:
        raise ValueError(f"top_k must be from 1 to the {codebook_size} codes of this model, got {sampling.top_k}")


def check_output_type(output_type: str) -> None:
    """Raise a clear error for an unknown ``output_type``."""
    if output_type not in OUTPUT_TYPES:
        raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")


def as_prompts(prompt: str | list[str] | None, batch: int | None = None) -> list[str] | None:
    """Normalise a prompt argument to a list of strings (``batch`` copies of a single string when given).

    An empty or whitespace-only prompt is refused: unconditional generation is ``prompt=None``, never implied.
    """
    if prompt is None:
        return None
    if isinstance(prompt, str):
        prompt = [prompt] * (batch or 1)
    prompts = list(prompt)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompt must be a string or a non-empty list of strings")
    if any(not p.strip() for p in prompts):
        raise ValueError("prompt is empty: describe the video, or pass prompt=None for unconditional generation")
    if batch is not None and len(prompts) != batch:
        raise ValueError(f"got {len(prompts)} prompts for {batch} videos: give one prompt or one per video")
    return prompts


def as_uint8_video(video: Any) -> np.ndarray:
    """Context frames as ``uint8 (B, T, H, W, 3)`` numpy from an array, a tensor or a video file path."""
    from worldmodel.video import read_video

    if isinstance(video, str | os.PathLike):
        video = read_video(video)
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray):
        raise ValueError(f"video must be a file path, a numpy array or a torch tensor, got {type(video).__name__}")
    if video.dtype != np.uint8 or video.ndim not in (4, 5) or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 frames (T, H, W, 3) or (B, T, H, W, 3), got {video.dtype} "
                         f"{tuple(video.shape)}")
    return video[None] if video.ndim == 4 else video
