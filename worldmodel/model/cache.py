"""KV cache for multi-head latent attention: per layer it stores only the normalised KV latent and the RoPE key."""

from __future__ import annotations

import torch


class KVCache:
    """Pre-allocated per-layer cache of `latent (B, S, kv_lora_rank)` and `rope_key (B, S, qk_rope_head_dim)`.

    Buffers are allocated on the first write (taking its dtype and device) with room for `max_seq_len` tokens.
    The model writes every layer at positions `length .. length + N - 1`, then calls `advance(N)`.
    `crop(n)` rolls the cache back to its first `n` tokens (speculative decoding rejects drafted tokens this way).
    Mixture-of-Depths layers also keep `key_valid (B, S)`: False where a token skipped the layer, so its key is
    hidden from later queries (see depth_router.py).
    """

    def __init__(self, n_layers: int, batch_size: int, max_seq_len: int, kv_lora_rank: int, rope_dim: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.n_layers = n_layers
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.kv_lora_rank = kv_lora_rank
        self.rope_dim = rope_dim
        self.length = 0
        self.latents: list[torch.Tensor | None] = [None] * n_layers
        self.rope_keys: list[torch.Tensor | None] = [None] * n_layers
        self.key_valid: list[torch.Tensor | None] = [None] * n_layers

    def update(self, layer: int, latent: torch.Tensor, rope_key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write `latent (B, N, r)` and `rope_key (B, N, dr)` at the current length; return all tokens so far."""
        batch, n = latent.shape[:2]
        if batch != self.batch_size:
            raise ValueError(f"This KV cache was made for batch size {self.batch_size}, got a batch of {batch}.")
        end = self.length + n
        if end > self.max_seq_len:
            raise ValueError(f"KV cache overflow: {end} tokens exceed max_seq_len {self.max_seq_len}.")
        if self.latents[layer] is None:
            self.latents[layer] = latent.new_zeros(batch, self.max_seq_len, self.kv_lora_rank)
            self.rope_keys[layer] = rope_key.new_zeros(batch, self.max_seq_len, self.rope_dim)
        lat, rk = self.latents[layer], self.rope_keys[layer]
        lat[:, self.length : end] = latent
        rk[:, self.length : end] = rope_key
        return lat[:, :end], rk[:, :end]  # (B, S, r), (B, S, dr)

    def update_valid(self, layer: int, valid: torch.Tensor) -> torch.Tensor:
        """Write the key visibility `valid (B, N)` of the tokens just written to `layer`; return it for all tokens."""
        end = self.length + valid.shape[1]
        if self.key_valid[layer] is None:
            self.key_valid[layer] = valid.new_zeros(self.batch_size, self.max_seq_len)
        self.key_valid[layer][:, self.length : end] = valid
        return self.key_valid[layer][:, :end]  # (B, S)

    def advance(self, n: int) -> None:
        """Mark `n` more tokens as stored (called once per forward, after all layers wrote)."""
        self.length += n

    def crop(self, n: int) -> None:
        """Roll back to the first `n` tokens; later writes overwrite the rest."""
        if not 0 <= n <= self.length:
            raise ValueError(f"Cannot crop a KV cache of {self.length} tokens to {n} tokens.")
        self.length = n

    def nbytes_per_token(self) -> int:
        """Bytes this cache holds per token over all layers (0 before the first write)."""
        return sum(t.element_size() * t.shape[-1] for t in self.latents + self.rope_keys if t is not None)


class SparseKVCache(KVCache):
    """A `KVCache` that also keeps, per layer, the key blocks block-sparse attention chose for each query block.

    `selections[layer]` is `(B, H, n_blocks, top_k)` (see sparse_attention.py). Row i is chosen when the first
    token of block i arrives, so after `crop(n)` the rows of blocks starting before n stay valid and the others
    are recomputed on the next write: `crop` needs no change.
    """

    def __init__(self, n_layers: int, batch_size: int, max_seq_len: int, kv_lora_rank: int, rope_dim: int) -> None:
        super().__init__(n_layers, batch_size, max_seq_len, kv_lora_rank, rope_dim)
        self.selections: list[torch.Tensor | None] = [None] * n_layers
