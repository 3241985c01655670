"""Depth growth: a deeper `WorldModel` that predicts exactly what a trained one does, to fine-tune from.

LLaMA Pro's block expansion (Wu et al., 2024): after each chosen block, insert a copy of it whose output
projections are zero (attention `wo`, the bridge's `out`, the feed-forward's down projections), so the copy
adds nothing to the residual stream until a fine-tune trains it. Unlike a freshly initialised block, the copy
starts with the trained block's attention, bridge and experts, so its first updates reuse what that block reads.
"""

from __future__ import annotations

import torch

from .ffn import FeedForward
from .moe import MoE
from .transformer import WorldModel


def _zero_outputs(block: torch.nn.Module) -> None:
    """Zero every projection through which `block` writes to the residual stream."""
    with torch.no_grad():
        block.attn.wo.weight.zero_()
        if block.bridge is not None:
            block.bridge.out.weight.zero_()
        ffn = block.ffn
        if isinstance(ffn, FeedForward):
            ffn.down_proj.weight.zero_()
        elif isinstance(ffn, MoE):
            ffn.experts.w2.zero_()
            if ffn.shared is not None:
                ffn.shared.down_proj.weight.zero_()
        else:
            raise TypeError(f"Cannot grow a block whose feed-forward is a {type(ffn).__name__}.")


def grow_depth(model: WorldModel, after: list[int] | None = None) -> WorldModel:
    """A copy of `model` with an identity copy of block `i` inserted after it, for each `i` in `after` (all by default).

    The result computes the same logits up to float rounding (the copies add zeros; kernels may pick another
    summation order for the new shapes). Dense blocks stay first: growing block `i < n_dense_layers` adds a
    dense block.
    """
    config = dict(model.config)
    n_layers = config["n_layers"]
    chosen = sorted(set(range(n_layers) if after is None else after))
    if not chosen or chosen[0] < 0 or chosen[-1] >= n_layers:
        raise ValueError(f"Blocks to grow must be a non-empty subset of 0..{n_layers - 1}; got {after}.")
    if config.get("mod_layers"):
        raise ValueError("Growing a model with mixture-of-depths layers is not supported; set mod_layers to null.")
    order: list[tuple[int, bool]] = []  # (old block, is the zeroed copy) for every new block
    for i in range(n_layers):
        order.append((i, False))
        if i in chosen:
            order.append((i, True))
    config["n_layers"] = len(order)
    config["n_dense_layers"] = sum(1 for i, _ in order if i < config["n_dense_layers"])
    if config.get("bridge_layers") is not None:
        bridged = set(config["bridge_layers"])
        config["bridge_layers"] = [j for j, (i, _) in enumerate(order) if i in bridged]
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    grown = WorldModel(**config)
    state = model.state_dict()
    new_state = {k: v for k, v in state.items() if not k.startswith("blocks.")}
    for j, (i, _) in enumerate(order):
        prefix = f"blocks.{i}."
        new_state.update({f"blocks.{j}.{k[len(prefix):]}": v.clone() for k, v in state.items() if k.startswith(prefix)})
    grown.load_state_dict(new_state, strict=True)
    for j, (_, is_copy) in enumerate(order):
        if is_copy:
            _zero_outputs(grown.blocks[j])
    return grown
