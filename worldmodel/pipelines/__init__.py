"""worldmodel.pipelines: text-to-video and physics-rollout generation with fast decoding, and video to text.

Names are imported on first use (PEP 562), so that ``worldmodel --help`` and the CLI stay fast: importing
``worldmodel.pipelines.cli`` must not pull in torch and diffusers.
"""

from __future__ import annotations

from worldmodel.lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _EXPORTS)
