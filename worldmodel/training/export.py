"""``worldmodel export``: any Lightning checkpoint of the project to a ``save_pretrained`` folder, weights-only."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any


def checkpoint_kind(hyper_parameters: dict[str, Any]) -> str:
    """``"world model"`` or ``"tokenizer"`` from a checkpoint's hyperparameters; ``ValueError`` for neither."""
    if "model_config" in hyper_parameters:
        return "world model"
    if "temporal_compression" in hyper_parameters and "spatial_compression" in hyper_parameters:
        return "tokenizer"
    raise ValueError("the checkpoint holds neither a WorldModelModule nor a TokenizerModule (hyperparameters: "
                     f"{', '.join(sorted(hyper_parameters)) or 'none'})")


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike) -> tuple[str, Path]:
    """Export the model of a Lightning ``checkpoint`` to ``out_dir`` atomically; returns ``(kind, out_dir)``.

    The file is loaded with ``weights_only=True``: one holding pickled objects is refused before anything in it
    runs. Raises ``FileNotFoundError`` / ``ValueError`` in one sentence naming the file.
    """
    import torch

    from worldmodel.training.common import export_component

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint file")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError:
        raise ValueError(f"{checkpoint}: not a weights-only checkpoint (it holds pickled objects); refused "
                         "without running it") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{checkpoint}: not a readable Lightning checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("hyper_parameters"), dict):
        raise ValueError(f"{checkpoint}: not a Lightning checkpoint of this project (no hyper_parameters)")
    try:
        kind = checkpoint_kind(state["hyper_parameters"])
    except ValueError as err:
        raise ValueError(f"{checkpoint}: {err}") from None
    if kind == "world model":
        from worldmodel.training.worldmodel_module import WorldModelModule

        return kind, export_component(WorldModelModule, "model", checkpoint, out_dir)
    from worldmodel.training.tokenizer_module import TokenizerModule

    return kind, export_component(TokenizerModule, "tokenizer", checkpoint, out_dir)
