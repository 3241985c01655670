"""worldmodel.pipelines: text-to-video and physics-rollout generation with fast decoding, and video to text.

Names are imported on first use (PEP 562), so that ``worldmodel --help`` and the CLI stay fast: importing
``worldmodel.pipelines.cli`` must not pull in torch and diffusers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_CHECKPOINT": "base",
    "CheckpointError": "base",
    "WorldModelPipeline": "base",
    "check_checkpoint": "base",
    "PhysicsRolloutPipeline": "physics_rollout",
    "PhysicsRolloutPipelineOutput": "physics_rollout",
    "TextToVideoPipeline": "text_to_video",
    "TextToVideoPipelineOutput": "text_to_video",
    "VideoToTextPipeline": "video_to_text",
    "VideoToTextPipelineOutput": "video_to_text",
    "DecodeOptions": "sampling",
    "GuidedModel": "sampling",
    "SamplingParams": "sampling",
    "generate_codes": "sampling",
    "FrameCopyDraft": "speculative",
    "SpeculativeStats": "speculative",
    "speculative_generate": "speculative",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import ``name`` from its sub-module on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
