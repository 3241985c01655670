"""The optional understanding vocabulary of `WorldModel` (docs/sequence-layout.md): text after the video codes.

Understanding sequence: `[BOS] c_0 ... c_{K-1} [TXT] b_0 ... b_{M-1} [EOS]`. Token ids: video codes `[0, V)`,
`BOS = V`, `TXT = V + 1`, `EOS = V + 2`, byte `b` is `V + 3 + b`: one embedding table of `V + 259` rows. The byte
head reads the same final hidden state as the code head and predicts 257 classes: byte `b` as class `b`, `EOS` as
class 256. Text positions continue the temporal RoPE axis after the last latent frame: the token `j` places after
`TXT` (`TXT` itself is `j = 0`) gets the 3D coordinate `(t_last + 1 + j, 0, 0)`, where `t_last` is the temporal
coordinate of the last video code (codes of latent frame `t` sit at `t + 1`, BOS at 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .rope import grid_positions

N_TEXT_TOKENS = 2 + 256  # TXT, EOS and the 256 bytes, after BOS
BYTE_CLASSES = 257  # byte-head outputs: 256 bytes + EOS
EOS_CLASS = 256
IGNORE = -100  # target of positions without a byte loss (cross_entropy's ignore_index)


@dataclass(frozen=True)
class TextVocab:
    """Token ids of the understanding vocabulary of a world model with `codebook_size` codes."""

    codebook_size: int

    @property
    def bos(self) -> int:
        """Beginning of sequence (as without text output)."""
        return self.codebook_size

    @property
    def txt(self) -> int:
        """The delimiter between the video codes and the text."""
        return self.codebook_size + 1

    @property
    def eos(self) -> int:
        """End of the text."""
        return self.codebook_size + 2

    @property
    def size(self) -> int:
        """Rows of the embedding table."""
        return self.codebook_size + 1 + N_TEXT_TOKENS

    def byte_id(self, byte: int) -> int:
        """Token id of one byte value 0..255."""
        return self.codebook_size + 3 + byte

    def token_of_class(self, cls: int) -> int:
        """Token id of a byte-head class (0..255 a byte, 256 EOS)."""
        return self.eos if cls == EOS_CLASS else self.byte_id(cls)


def understanding_batch(
    codes: list[torch.Tensor], answers: list[bytes], vocab: TextVocab, pauses: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs and byte targets of understanding examples, right-padded to one length with EOS.

    `codes[i]` holds the flattened (t, h, w) codes `(n_i,)` the example sees, `answers[i]` its answer bytes.
    Row i is `[BOS] codes [TXT] (pauses more TXT) b_0 .. b_{M-1}` (the final EOS is only a target). Returns
    `input_ids (B, L)`, `text_start (B,)` (index of the first TXT) and `targets (B, L)`: at the last TXT the first
    byte, ..., at the last byte EOS as byte-head classes, `IGNORE` elsewhere (codes, BOS, pauses, padding).
    """
    if len(codes) != len(answers) or not codes:
        raise ValueError(f"understanding_batch needs one answer per code row, got {len(codes)} and {len(answers)}.")
    length = max(int(c.numel()) + 2 + pauses + len(a) for c, a in zip(codes, answers, strict=True))
    ids = torch.full((len(codes), length), vocab.eos, dtype=torch.long)  # (B, L)
    targets = torch.full((len(codes), length), IGNORE, dtype=torch.long)  # (B, L)
    starts = torch.zeros(len(codes), dtype=torch.long)  # (B,)
    for i, (row, answer) in enumerate(zip(codes, answers, strict=True)):
        n, m = int(row.numel()), len(answer)
        text = torch.tensor(list(answer), dtype=torch.long)  # (M,)
        ids[i, 0], ids[i, 1 : n + 1], ids[i, n + 1 : n + 2 + pauses] = vocab.bos, row.reshape(-1).long(), vocab.txt
        first = n + 2 + pauses  # index of the first answer byte
        ids[i, first : first + m] = text + vocab.codebook_size + 3
        targets[i, first - 1 : first - 1 + m] = text
        targets[i, first - 1 + m] = EOS_CLASS
        starts[i] = n + 1
    return ids, starts, targets


def sequence_coords(start: int, length: int, height: int, width: int, text_start: torch.Tensor) -> torch.Tensor:
    """3D RoPE coordinates `(B, N, 3)` of positions start..start+N-1 of rows whose TXT sits at `text_start (B,)`:
    the video grid before it (rope.grid_positions), `(t_last + 1 + j, 0, 0)` from it on."""
    grid = grid_positions(start, length, height, width)  # (N, 3)
    pos = torch.arange(start, start + length)  # (N,)
    starts = text_start.cpu()[:, None]  # (B, 1)
    t_last = (starts - 1 + height * width - 1) // (height * width)  # latent frames before TXT = last code's t
    j = pos[None] - starts  # (B, N)
    text = torch.stack([t_last + 1 + j, torch.zeros_like(j), torch.zeros_like(j)], dim=-1)  # (B, N, 3)
    return torch.where((j >= 0)[..., None], text, grid[None].expand(len(starts), -1, -1))  # (B, N, 3)
