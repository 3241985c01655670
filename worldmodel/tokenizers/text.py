"""Byte-level text tokenizer: any UTF-8 string becomes a row of byte ids, with a padding mask."""

from __future__ import annotations

import torch


class ByteTokenizer:
    """Turns prompts into byte ids: id `b` is the UTF-8 byte `b` (0..255) and `pad_id` = 256 pads short rows.

    There is no truncation: a prompt whose UTF-8 encoding is longer than `max_length` bytes raises a `ValueError`.
    The empty prompt is allowed and gives an all-False mask row, which the world model reads as "no text"
    (unconditional), the same thing the classifier-free-guidance branch uses.
    """

    pad_id: int = 256
    vocab_size: int = 257

    def __init__(self, max_length: int = 128) -> None:
        if max_length < 1:
            raise ValueError(f"max_length must be a positive number of bytes, got {max_length}.")
        self.max_length = max_length

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of prompts into `(ids LongTensor (B, L), mask BoolTensor (B, L))`, True = real byte.

        L is the longest prompt in the batch (at least 1), so an all-empty batch gives one padded column.
        """
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise ValueError(f"texts must be a list of strings, got {type(texts).__name__}.")
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] must be a string, got {type(text).__name__}.")
            data = text.encode("utf-8")
            if len(data) > self.max_length:
                raise ValueError(
                    f"Prompt {i} is {len(data)} bytes long in UTF-8, over the limit of {self.max_length} bytes: "
                    "shorten it or raise max_length (the model's max_text_len)."
                )
            rows.append(data)
        length = max([len(r) for r in rows] + [1])
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)  # (B, L)
        mask = torch.zeros((len(rows), length), dtype=torch.bool)  # (B, L)
        for i, data in enumerate(rows):
            if data:
                ids[i, : len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
                mask[i, : len(data)] = True
        return ids, mask

    def decode(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> list[str]:
        """Decode id rows back to strings (padding and masked positions dropped; invalid UTF-8 replaced)."""
        if mask is None:
            mask = ids != self.pad_id
        out = []
        for row, keep in zip(ids.tolist(), mask.tolist(), strict=True):
            out.append(bytes(b for b, k in zip(row, keep, strict=True) if k and b < 256).decode("utf-8", "replace"))
        return out
