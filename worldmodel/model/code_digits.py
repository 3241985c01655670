"""Digit-factorised terms for the code embedding and the code head of an FSQ codebook.

An FSQ code is a tuple of digits (``index = sum(digit_i * basis_i)``, ``basis = cumprod([1, *levels[:-1]])``, as
``worldmodel.tokenizers.quantizers.FSQ`` numbers them). With 4096 codes a ball of one colour shows as some twenty
codes, each rare, so a full embedding and head learn "red" twenty times over; the digits that those codes share
are seen far more often. :class:`CodeDigits` adds, to every code's embedding row and head row, the sum of one
learned vector per digit value: the joint softmax over all codes stays exact (decoding, top-k and speculative
decoding are unchanged), only its parameterisation shares statistics between codes with common digits. Both
tables start at zero, so adding them to a trained model changes nothing until they train.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def digit_one_hot(levels: list[int]) -> torch.Tensor:
    """`(prod(levels), sum(levels))` 0/1 matrix: row `k` marks the value of each digit of code `k`. Built on the CPU
    (also under a `torch.device("meta")` context, where a shape-only model is built to check saved weights)."""
    cpu = torch.device("cpu")
    basis = torch.tensor([math.prod(levels[:i]) for i in range(len(levels))], device=cpu)  # (D,)
    offsets = torch.tensor([sum(levels[:i]) for i in range(len(levels))], device=cpu)  # (D,)
    codes = torch.arange(math.prod(levels), device=cpu)
    digits = (codes[:, None] // basis) % torch.tensor(levels, device=cpu)  # (K, D)
    one_hot = torch.zeros(len(codes), sum(levels), device=cpu)
    one_hot[codes[:, None], digits + offsets] = 1.0
    return one_hot


class CodeTerms(nn.Module):
    """Terms added to the code embedding and the code head from a fixed per-code table `(K, F)`: a code's extra
    embedding is `table[code] @ embed`, its extra logit `(h @ head^T) . table[code]`. Subclasses register the table
    as the buffer `table`; `embed` and `head` `(F, D)` start at zero."""

    table: torch.Tensor

    def __init__(self, n_columns: int, d_model: int) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.zeros(n_columns, d_model))
        self.head = nn.Parameter(torch.zeros(n_columns, d_model))

    def embed_codes(self, input_ids: torch.Tensor) -> torch.Tensor:
        """`input_ids (B, N)` -> each code's table row times `embed`, `(B, N, D)`; zero for BOS and text ids."""
        codes = self.table.shape[0]
        rows = self.table[input_ids.clamp(max=codes - 1)] * (input_ids < codes)[..., None]  # (B, N, F)
        return rows.to(self.embed.dtype) @ self.embed

    def code_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states `h (B, N, D)` -> each code's extra logit `(B, N, K)`, added to the code head's."""
        return (h @ self.head.t().to(h.dtype)) @ self.table.t().to(h.dtype)


class CodeDigits(CodeTerms):
    """Per-digit embedding and head tables for the codes of an FSQ codebook with `levels` (zero at init)."""

    def __init__(self, levels: list[int], d_model: int) -> None:
        super().__init__(sum(levels), d_model)
        self.register_buffer("table", digit_one_hot(levels), persistent=False)  # (K, sum(levels))
