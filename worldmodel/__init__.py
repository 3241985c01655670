"""worldmodel: learn a small world from video and text, and imagine it forward.

The public API, imported on first use (PEP 562) so that ``import worldmodel`` and the CLI stay fast::

    from worldmodel import simulate, generate_dataset, VideoTokenizer, WorldModel
    from worldmodel import TextToVideoPipeline, PhysicsRolloutPipeline, evaluate_physics, frechet_video_distance
"""

from __future__ import annotations

import logging

from worldmodel.lazy import lazy_getattr

__version__ = "0.1.0"


class _DropLibraryNoise(logging.Filter):
    """Drops two import-time messages that say nothing about the user's work: diffusers' note that it cannot import
    private torchao tensor classes (they moved in torchao 0.18; only torchao-serialized checkpoints need them, and
    this project's weights are safetensors) and torch's deprecation notes on enums torchao registers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("Unable to import `torchao` Tensor objects" in message or "is an Enum subclass" in message)


for _name in ("diffusers.quantizers.torchao.torchao_quantizer", "torch.utils._pytree"):
    logging.getLogger(_name).addFilter(_DropLibraryNoise())

_EXPORTS = {
    "simulate": "worldmodel.datasets",
    "generate_dataset": "worldmodel.datasets",
    "PhysicsDataModule": "worldmodel.datasets",
    "VideoFolderDataModule": "worldmodel.datasets",
    "VideoTokenizer": "worldmodel.tokenizers",
    "ByteTokenizer": "worldmodel.tokenizers.text",
    "WorldModel": "worldmodel.model",
    "TextToVideoPipeline": "worldmodel.pipelines",
    "PhysicsRolloutPipeline": "worldmodel.pipelines",
    "VideoToTextPipeline": "worldmodel.pipelines",
    "evaluate_physics": "worldmodel.evaluation",
    "frechet_video_distance": "worldmodel.evaluation",
    "text_adherence": "worldmodel.evaluation",
    "read_video": "worldmodel.video",
    "write_video": "worldmodel.video",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
