"""Block-sparse causal attention (MoBA / NSA style block selection) for long videos.

The sequence is cut into blocks of ``block_size`` tokens. Every query block attends to

* the first block (an attention sink that every token keeps),
* the ``top_k`` earlier blocks whose mean key scores highest against the block's *anchor query*,
* its own (local) block, causally masked inside.

Everything else is skipped: the plain-PyTorch path gathers only the selected key/value blocks for
each query block and runs one small dense attention per query block, batched over all query blocks
(cost ``N * (top_k + 2) * block_size`` instead of ``N^2 / 2``); the world model always runs this path.
A ``flex_attention`` path (``backend="flex"``) builds the same pattern as a ``BlockMask``; it is benchmark-only
(``benchmarks/long_video.py``, ``benchmarks/long_video_gpu.py``): no model config reaches it, since it is fused
only under ``torch.compile``, serves the full forward only (no cached decoding), and, in torch 2.14.1, has no
backward on CPU.

Why an anchor query rather than the mean of the query block (MoBA's per-query or NSA's pooled
scoring)? The mean over a query block includes queries *later* than most of the block's tokens, so
the selection of token ``p`` would depend on tokens after ``p``: a non-causal model, and cached
decoding could not reproduce it. The anchor is the first query of the block (position ``i *
block_size``), which precedes or equals every token of the block, so the selection is causal and is
computed exactly once, when the anchor token arrives. During cached decoding the caller keeps the
selection table returned by :func:`block_sparse_attention` (``(B, H, n_blocks, top_k)``, ``-1`` for
an empty slot) and passes it back; rolling a cache back to ``n`` tokens keeps the first
``ceil(n / block_size)`` rows (:func:`crop_selection`).

``block_offset`` moves the block boundaries to ``block_offset + i * block_size``: block 0 is then the first
``block_offset`` tokens alone. The world model passes 1, so that BOS is the sink block and the code blocks line up
with its latent frames when ``block_size`` is one frame's codes (``h * w``). That matters: with boundaries at
multiples of 64 every block held 63 codes of one frame and the first code of the next, and its anchor query was
the *last* code of the previous frame, a poor stand-in for the block's queries (measured on the shipped model at
16K tokens, block 64, top-8: output cosine 0.88-0.90 against 0.96 with frame-aligned blocks). Internally the keys
get ``(-block_offset) % block_size`` hidden zero keys in front, so all indices below are in that padded frame.

When ``top_k >= n_blocks - 2`` every earlier block is kept and the result equals dense causal
attention (up to float rounding).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from .dense_attention import dense_causal_attention, sdpa

Backend = Literal["gather", "flex"]

_compiled_flex = None


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_size: int, top_k: int, q_offset: int):
    """Validate shapes and sizes; raise ValueError with one clear sentence."""
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be (B, H, N, D) tensors, got shapes {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}.")
    if k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} disagree on batch, heads, "
                         "key length or query/key head dim.")
    if block_size < 1 or top_k < 0:
        raise ValueError(f"block_size must be >= 1 and top_k >= 0, got block_size={block_size}, top_k={top_k}.")
    if q_offset < 0 or q_offset + q.shape[2] != k.shape[2]:
        raise ValueError(f"queries must be the last {q.shape[2]} positions of the {k.shape[2]} keys, "
                         f"got q_offset={q_offset}.")


def block_means(k: torch.Tensor, block_size: int, key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean key of each *complete* block: (B, H, N, D) -> (B, H, N // block_size, D); with `key_valid (B, N)`
    the mean of its visible keys only (0 for a block with none)."""
    B, H, N, D = k.shape
    n_full = N // block_size
    blocks = k[:, :, : n_full * block_size].reshape(B, H, n_full, block_size, D)
    if key_valid is None:
        return blocks.mean(dim=3)
    w = key_valid[:, : n_full * block_size].reshape(B, 1, n_full, block_size, 1).to(k.dtype)
    return (blocks * w).sum(dim=3) / w.sum(dim=3).clamp(min=1)


def select_blocks(anchors: torch.Tensor, anchor_blocks: torch.Tensor, means: torch.Tensor, top_k: int) -> torch.Tensor:
    """Pick the ``top_k`` earlier blocks for each query block from its anchor query.

    anchors: (B, H, n, D) anchor queries; anchor_blocks: (n,) their block indices; means: (B, H, m, D)
    mean keys of complete blocks. Candidates of block ``i`` are blocks ``1 .. i - 1`` (block 0 and the
    local block are always kept). Returns (B, H, n, top_k) block indices, ``-1`` where a slot is empty.
    """
    B, H, n, _ = anchors.shape
    if top_k == 0 or means.shape[2] == 0:
        return anchors.new_full((B, H, n, top_k), -1, dtype=torch.long)
    scores = (anchors @ means.transpose(-1, -2)).float()  # (B, H, n, m)
    j = torch.arange(means.shape[2], device=anchors.device)
    candidate = (j[None, :] >= 1) & (j[None, :] < anchor_blocks[:, None])  # (n, m)
    scores = scores.masked_fill(~candidate, float("-inf"))
    k_eff = min(top_k, means.shape[2])
    top_scores, top_idx = scores.topk(k_eff, dim=-1)  # (B, H, n, k_eff)
    top_idx = top_idx.masked_fill(top_scores == float("-inf"), -1)
    if k_eff < top_k:
        top_idx = F.pad(top_idx, (0, top_k - k_eff), value=-1)
    return top_idx


def crop_selection(selection: torch.Tensor, length: int, block_size: int, block_offset: int = 0) -> torch.Tensor:
    """Roll a selection table back to a cache of ``length`` tokens (keeps blocks whose anchor is kept)."""
    return selection[:, :, : math.ceil((length + (-block_offset) % block_size) / block_size)]


def _selection_table(q, k, block_size, top_k, q_offset, selection, key_valid, pad):
    """Selection rows for every block up to the last query: earlier rows from ``selection``, new ones computed.

    Positions are in the padded frame (``pad`` hidden keys in front); a block whose anchor is a padding slot (only
    block 0) has no candidates and gets an empty row."""
    B, H, M, _ = q.shape
    n_total = math.ceil(k.shape[2] / block_size)
    n_known = math.ceil(q_offset / block_size)  # blocks whose anchor came before this call
    if n_known > 0 and selection is None and q_offset == pad:  # first call: only padding came before
        known = q.new_full((B, H, n_known, top_k), -1, dtype=torch.long)
    elif n_known > 0:
        if selection is None or selection.shape[2] < n_known or selection.shape[3] != top_k:
            got = None if selection is None else tuple(selection.shape)
            raise ValueError(f"cached decoding at offset {q_offset} needs the selection table of the first "
                             f"{n_known} blocks with top_k={top_k} (got {got}).")
        known = selection[:, :, :n_known]
    else:
        known = q.new_empty((B, H, 0, top_k), dtype=torch.long)
    new_blocks = torch.arange(n_known, n_total, device=q.device)  # (n_new,)
    anchors = q[:, :, new_blocks * block_size - q_offset]  # (B, H, n_new, D)
    fresh = select_blocks(anchors, new_blocks, block_means(k, block_size, key_valid), top_k)
    return torch.cat([known, fresh], dim=2)  # (B, H, n_total, top_k)


def _gather_attention(q, k, v, block_size, table, q_offset, scale, key_valid, pad=0):
    """Attend each query block to its gathered key blocks only (no dense N x N product).

    Query blocks ``i < top_k + 2`` have at most ``top_k`` candidates, so they keep every earlier block: their
    queries run plain dense causal attention over that short prefix. Every later query block has all
    ``top_k + 2`` slots filled, so one causal mask of shape (bs, S * bs) serves all of them. The first ``pad``
    keys are padding (inside block 0) and hidden from every query.
    """
    B, H, M, Dq = q.shape
    N, Dv = k.shape[2], v.shape[-1]
    bs, top_k = block_size, table.shape[-1]
    split = min(max((top_k + 2) * bs - q_offset, 0), M)  # queries inside the dense prefix
    parts = []
    if split > 0:
        end = q_offset + split
        valid = None if key_valid is None else key_valid[:, :end]
        if pad and valid is None:
            valid = (torch.arange(end, device=k.device) >= pad).expand(k.shape[0], end)
        parts.append(dense_causal_attention(q[:, :, :split], k[:, :, :end], v[:, :, :end], q_offset=q_offset,
                                            scale=scale, key_valid=valid))  # fmt: skip
    if split == M:
        return torch.cat(parts, dim=2)
    q, q_offset, M = q[:, :, split:], q_offset + split, M - split
    n_kb = math.ceil(N / bs)
    qb0 = q_offset // bs
    n_qb = n_kb - qb0
    lead = q_offset - qb0 * bs  # padding rows before the first query inside block qb0
    pad_k = n_kb * bs - N
    k_blocks = F.pad(k, (0, 0, 0, pad_k)).reshape(B * H * n_kb, bs * Dq)
    v_blocks = F.pad(v, (0, 0, 0, pad_k)).reshape(B * H * n_kb, bs * Dv)
    q_blocks = F.pad(q, (0, 0, lead, n_qb * bs - lead - M)).reshape(B * H, n_qb, bs, Dq)

    # Slots per query block: [first block, top_k selected, local block]; all valid here.
    local = torch.arange(qb0, n_kb, device=q.device).expand(B, H, n_qb)  # (B, H, n_qb)
    slots = torch.cat([torch.zeros_like(local)[..., None], table[:, :, qb0:], local[..., None]], dim=-1)
    S = slots.shape[-1]
    flat = (slots + torch.arange(B * H, device=q.device).view(B, H, 1, 1) * n_kb).reshape(-1)
    k_sel = k_blocks[flat].reshape(B * H, n_qb, S * bs, Dq)  # gathered keys
    v_sel = v_blocks[flat].reshape(B * H, n_qb, S * bs, Dv)

    mask = torch.ones(bs, S * bs, dtype=torch.bool, device=q.device)  # (bs, S * bs): causal in the local slot
    mask[:, -bs:] = torch.ones(bs, bs, dtype=torch.bool, device=q.device).tril()
    mask[:, :pad] = False  # slot 0 is always block 0, where the padding sits
    if key_valid is not None:  # hidden keys (Mixture-of-Depths): gather their flags too; each query keeps itself
        own = torch.zeros(bs, S * bs, dtype=torch.bool, device=q.device)
        own[:, -bs:] = torch.eye(bs, dtype=torch.bool, device=q.device)
        valid_blocks = F.pad(key_valid, (0, pad_k)).reshape(B, 1, n_kb, bs).expand(B, H, n_kb, bs)
        valid_sel = valid_blocks.reshape(B * H * n_kb, bs)[flat].reshape(B * H, n_qb, 1, S * bs)
        mask = mask & (valid_sel | own)  # (BH, n_qb, bs, S * bs)
    out = sdpa(q_blocks, k_sel, v_sel, mask, scale)  # (BH, n_qb, bs, Dv)
    parts.append(out.reshape(B, H, n_qb * bs, Dv)[:, :, lead : lead + M])
    return torch.cat(parts, dim=2)


def _flex_attention(q, k, v, block_size, table, scale, key_valid, pad=0):
    """The same block pattern as a flex_attention BlockMask (full layout only; benchmark-only). The first ``pad``
    keys (inside block 0) are padding: block 0 then becomes a masked block, and a padding query sees only itself."""
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    global _compiled_flex
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    B, H, N, _ = q.shape
    n_b = math.ceil(N / block_size)
    # Full (unmasked) blocks: block 0 for every query block but the first, then the valid selections.
    first = torch.zeros(B, H, n_b, 1, dtype=torch.long, device=q.device)
    full = torch.cat([first, table], dim=-1)  # (B, H, n_b, 1 + top_k)
    full_valid = full >= 0
    full_valid[:, :, 0, 0] = False
    if pad:  # block 0 holds padding: masked, not full
        full_valid[..., 0] = False
    # Stable sort moves valid entries to the front, as BlockMask expects.
    order = (~full_valid).to(torch.int8).argsort(dim=-1, stable=True)
    full_idx = full.gather(-1, order).clamp(min=0)
    full_num = full_valid.sum(-1)
    full_idx = F.pad(full_idx, (0, n_b - full_idx.shape[-1])) if full_idx.shape[-1] < n_b else full_idx[..., :n_b]
    local = torch.arange(n_b, device=q.device).view(1, 1, n_b, 1).expand(B, H, n_b, 1)
    kv_idx = F.pad(local, (0, n_b - 1)).clone()
    kv_num = torch.ones(B, H, n_b, dtype=torch.int32, device=q.device)
    if pad and n_b > 1:  # masked blocks: the local one, then block 0
        kv_idx[:, :, 1:, 1] = 0
        kv_num[:, :, 1:] = 2

    # The mask_mod states the whole pattern, so that any path which evaluates it everywhere agrees.
    slot_valid = torch.arange(n_b, device=q.device) < full_num[..., None]  # (B, H, n_b, n_b)
    allowed = torch.zeros(B, H, n_b, n_b, dtype=torch.int32, device=q.device)  # (B, H, q block, kv block)
    allowed = allowed.scatter_add(-1, full_idx, slot_valid.to(torch.int32)) > 0
    allowed |= torch.eye(n_b, dtype=torch.bool, device=q.device)
    allowed[..., 0] = True

    def selected_causal(b, h, q_idx, kv_idx):
        causal = (q_idx >= kv_idx) & ((kv_idx >= pad) | (q_idx == kv_idx))
        return causal & allowed[b, h, q_idx // block_size, kv_idx // block_size]

    if key_valid is None:
        block_mask = BlockMask.from_kv_blocks(
            kv_num, kv_idx.to(torch.int32), full_num.to(torch.int32), full_idx.to(torch.int32),
            BLOCK_SIZE=block_size, mask_mod=selected_causal, seq_lengths=(N, N),
        )
    else:  # hidden keys: no block is full any more, the mask_mod runs on every kept block

        def selected_causal_visible(b, h, q_idx, kv_idx):
            return selected_causal(b, h, q_idx, kv_idx) & (key_valid[b, kv_idx] | (q_idx == kv_idx))

        partial = torch.cat([kv_idx[..., : 1 + (pad > 0)], full_idx[..., : n_b - 1]], dim=-1)[..., :n_b]
        block_mask = BlockMask.from_kv_blocks(
            (kv_num + full_num).to(torch.int32), partial.to(torch.int32), BLOCK_SIZE=block_size,
            mask_mod=selected_causal_visible, seq_lengths=(N, N),
        )
    return _compiled_flex(q, k, v, block_mask=block_mask, scale=scale)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_size: int,
    top_k: int,
    *,
    q_offset: int = 0,
    selection: torch.Tensor | None = None,
    scale: float | None = None,
    backend: Backend = "gather",
    key_valid: torch.Tensor | None = None,
    block_offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal block-sparse attention.

    Args:
        q: (B, H, M, Dk) queries at positions ``q_offset .. q_offset + M - 1``.
        k: (B, H, N, Dk) keys at positions ``0 .. N - 1`` with ``N = q_offset + M``.
        v: (B, H, N, Dv) values.
        block_size: tokens per block.
        top_k: earlier blocks kept per query block besides the first and the local block.
        q_offset: number of cached positions before the first query (0 for a full forward).
        selection: (B, H, >= ceil(q_offset / block_size), top_k) table returned by an earlier call on the
            same cache; required when ``q_offset > 0``.
        scale: softmax scale, default ``1 / sqrt(Dk)``.
        backend: ``"gather"`` (plain PyTorch, skips unselected blocks, any ``q_offset``; what the model runs) or
            ``"flex"`` (``torch.compile``d flex_attention with a BlockMask; full forward only; benchmark-only).
        key_valid: optional (B, N) bool; keys marked False are hidden from every query but their own
            (Mixture-of-Depths: tokens that skipped the layer) and left out of the block means.
        block_offset: block boundaries at ``block_offset + i * block_size`` (block 0 is then the first
            ``block_offset`` tokens); 0 puts them at multiples of ``block_size``. Keep it fixed for a cache.

    Returns:
        (out (B, H, M, Dv), selection (B, H, ceil(N / block_size), top_k)) — keep the table for decoding.
    """
    _check_inputs(q, k, v, block_size, top_k, q_offset)
    if key_valid is not None and key_valid.shape != (k.shape[0], k.shape[2]):
        raise ValueError(f"key_valid must be (B, N) = {(k.shape[0], k.shape[2])}, got {tuple(key_valid.shape)}.")
    if not 0 <= block_offset <= block_size:
        raise ValueError(f"block_offset must be in [0, block_size], got {block_offset} for block_size {block_size}.")
    pad = (-block_offset) % block_size  # hidden zero keys in front: blocks then start at block_offset + i * bs
    if pad:
        k, v = F.pad(k, (0, 0, pad, 0)), F.pad(v, (0, 0, pad, 0))
        if key_valid is not None:
            key_valid = F.pad(key_valid, (pad, 0), value=False)
    table = _selection_table(q, k, block_size, top_k, q_offset + pad, selection, key_valid, pad)
    if backend == "gather":
        out = _gather_attention(q, k, v, block_size, table, q_offset + pad, scale, key_valid, pad)
    elif backend == "flex":
        if q_offset != 0:
            raise ValueError(f"backend 'flex' supports the full forward only (q_offset 0), got q_offset={q_offset}.")
        if block_size % 16 != 0:
            # Measured with torch 2.14.1: compiled CPU flex kernels are wrong for block sizes 8, 24, 40, even
            # with a plain causal mask, and right for every multiple of 16 tried (16 .. 128).
            raise ValueError(f"backend 'flex' needs a block_size that is a multiple of 16, got {block_size}.")
        q = F.pad(q, (0, 0, pad, 0))  # padding queries too (flex wants N x N); their rows are dropped
        out = _flex_attention(q, k, v, block_size, table, scale, key_valid, pad)[:, :, pad:]
    else:
        raise ValueError(f"backend must be 'gather' or 'flex', got {backend!r}.")
    return out, table

