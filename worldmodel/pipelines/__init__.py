"""worldmodel.pipelines: text-to-video and physics-rollout generation with fast decoding."""

from worldmodel.pipelines.base import DEFAULT_CHECKPOINT, CheckpointError, WorldModelPipeline, check_checkpoint
from worldmodel.pipelines.physics_rollout import PhysicsRolloutPipeline, PhysicsRolloutPipelineOutput
from worldmodel.pipelines.sampling import DecodeOptions, GuidedModel, SamplingParams, generate_codes
from worldmodel.pipelines.speculative import FrameCopyDraft, SpeculativeStats, speculative_generate
from worldmodel.pipelines.text_to_video import TextToVideoPipeline, TextToVideoPipelineOutput

__all__ = [
    "DEFAULT_CHECKPOINT",
    "CheckpointError",
    "DecodeOptions",
    "FrameCopyDraft",
    "GuidedModel",
    "PhysicsRolloutPipeline",
    "PhysicsRolloutPipelineOutput",
    "SamplingParams",
    "SpeculativeStats",
    "TextToVideoPipeline",
    "TextToVideoPipelineOutput",
    "WorldModelPipeline",
    "check_checkpoint",
    "generate_codes",
    "speculative_generate",
]
