"""Quantised inference with torchao: the world model's linear layers in int8 or int4 weights.

Imports of torch and torchao wait until a model is quantised, so that the CLI starts fast.
Measured on the 2-core CPU box (``benchmarks/serving.py`` has the current figures), in eager mode:

- ``int8``: ``Int8WeightOnlyConfig`` (per-channel int8 weights, dequantised at each product): weights take a
  quarter of the memory, decoding runs at about float speed, not faster. torchao's dynamic-activation int8
  path (``Int8DynamicActivationInt8WeightConfig``) was 2-3x slower than float here without ``torch.compile``.
- ``int4``: ``IntxWeightOnlyConfig(torch.int4, PerGroup(32))``, weights unpacked to int8 and dequantised:
  an eighth of the memory, slower than float. torchao's ``Int4WeightOnlyConfig`` needs CUDA kernels (mslk) or
  bfloat16 (tile-packed), so it does not run on a float32 CPU model.

Left in float: the MoE experts (stacked expert weights, not ``nn.Linear`` modules), the attention's ``wkv_b``
(whose weight the cached attention reads as a matrix), the text encoder's embeddings and the video tokenizer.
"""

from __future__ import annotations

from typing import Any

QUANTIZE_MODES = ("int8", "int4")
QUANTIZE_HELP = ("quantise the world model's linear layers with torchao: int8 (a quarter of the weight memory) or "
                 "int4 (an eighth, about +3 %% validation cross-entropy). Neither is faster than float32 on a CPU "
                 "without VNNI int8 instructions (measured 0.8-1.0x for int8, 0.3-0.8x for int4 on an AVX2 "
                 "box: benchmarks/results/serving.json); they save memory")


INT4_GROUP = 32  # int4 weights share one scale per group of 32 input features


def _quantizable(module: Any, name: str, mode: str) -> bool:
    """Linear layers whose weight is used only through ``F.linear`` (``wkv_b`` is also viewed as a matrix) and, for
    int4, whose input width is a whole number of groups."""
    from torch import nn

    if not isinstance(module, nn.Linear) or name.endswith("wkv_b"):
        return False
    return mode != "int4" or module.in_features % INT4_GROUP == 0


def quantize_world_model(world_model: Any, mode: str) -> Any:
    """Quantise ``world_model``'s linear layers in place with torchao (``mode`` in :data:`QUANTIZE_MODES`)."""
    config = _config(mode)
    from torchao.quantization import quantize_

    quantize_(world_model, config, filter_fn=lambda module, name: _quantizable(module, name, mode))
    return world_model


def quantize_pipeline(pipeline: Any, mode: str | None) -> Any:
    """Quantise a pipeline's world model (and draft model) in place; ``mode=None`` leaves it in float."""
    if mode is None:
        return pipeline
    for name in ("world_model", "draft_model"):
        module = getattr(pipeline, name, None)
        if module is not None:
            quantize_world_model(module, mode)
    return pipeline


def _config(mode: str) -> Any:
    """The torchao config of a quantisation mode; a clear error for an unknown one."""
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_MODES)} (or None for float), got {mode!r}")
    import torch
    from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerGroup

    if mode == "int8":
        return Int8WeightOnlyConfig()
    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(INT4_GROUP))
