"""WorldModel: a GPT-style MoE transformer over video codes, with text fused through gated cross-attention.

Sequence: `[BOS, code_0, code_1, ...]` with codes in raster order (t, h, w); `logits[:, i]` predicts code i.
Position 0 is BOS, position p >= 1 is video code p - 1 at 3D coordinate (t + 1, h, w) (see rope.py).
With `text_output` the model also reads and writes text after the codes (`[TXT] bytes [EOS]`, text_output.py).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ..pretrained import LocalPretrained
from ..tokenizers.text import ByteTokenizer
from .attention import MultiHeadLatentAttention
from .block import Block
from .bridge import GatedCrossAttention, TextContext
from .cache import KVCache, SparseKVCache
from .code_digits import CodeDigits
from .code_features import CodeFeatures
from .depth_router import DepthRouter
from .ffn import FeedForward
from .moe import Experts, MoE
from .rope import VideoRoPE, grid_positions, split_rope_dims
from .router import Router
from .text_encoder import TextEncoder
from .text_output import BYTE_CLASSES, TextVocab, sequence_coords

# MoE arguments read from another WorldModel config key than `moe_<argument>`.
MOE_CONFIG_KEYS = {"d_model": "d_model", "n_experts": "moe_experts", "n_groups": "moe_groups",
                   "n_shared": "moe_shared_experts"}  # fmt: skip


def build_moe(config: dict) -> MoE:
    """The MoE layer a WorldModel config describes: each argument `a` of `MoE` comes from the config key `moe_a`
    (or the key `MOE_CONFIG_KEYS` names), so `MoE`'s signature is the one list of MoE arguments."""
    names = inspect.signature(MoE).parameters
    return MoE(**{name: config[MOE_CONFIG_KEYS.get(name, f"moe_{name}")] for name in names})


@dataclass
class WorldModelOutput(BaseOutput):
    """`logits (B, N, codebook_size)`, `aux_loss` (scalar, MoE auxiliary losses summed), `stats` (MoE routing
    statistics keyed `layer{i}/{name}`: `load (E,)`, `utilisation`, `max_mean_load`, `experts_per_token`,
    `dropped_share`); with `text_output`, `text_logits (B, N, 257)` of the byte head (bytes, then EOS) at every
    position (meaningful from TXT on), else None; `hidden_states (B, N, D)`: the final-normed states both heads read."""

    logits: torch.Tensor
    aux_loss: torch.Tensor
    stats: dict[str, torch.Tensor]
    text_logits: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None


class WorldModel(LocalPretrained, ModelMixin, ConfigMixin):
    """MoE world-model backbone (see the module docstring).

    Layers `0 .. n_dense_layers - 1` use a dense SwiGLU FFN of width `dense_hidden`, the rest a `MoE`.
    Layers listed in `bridge_layers` (None = every layer) get a gated cross-attention to the text states, its
    gate starting at `bridge_gate_init` (open: the whole model trains from scratch; a gate at 0 passes no
    gradient to the bridge's projections, and such bridges stayed shut through 3000 training steps).
    Long videos: `attention_impl="block_sparse"` makes every layer's attention block-sparse (blocks of
    `sparse_block_size` tokens, `sparse_top_k` chosen blocks + the first and the local one; BOS is block 0 on its
    own, so blocks of `latent_height * latent_width` codes are latent frames); layers listed in
    `mod_layers` route tokens around the block (Mixture-of-Depths: a causal predictor decides, in training and
    when generating alike, and about `mod_rho` of the tokens skip it; `calibrate_depth_routers` sets its
    thresholds on data after training). Both are off by default.
    `max_seq_len = latent_frames * latent_height * latent_width + 1` (BOS included).
    Video understanding: `text_output=True` adds TXT, EOS and the 256 bytes to the embedding table, a byte head
    beside the code head and text positions after the video (text_output.py, docs/sequence-layout.md);
    `max_seq_len` grows by `max_answer_len + 1` (TXT and the answer bytes). Off, the model is exactly as without.
    `code_positions=True` adds learned row and column embeddings (zero at init) to every video code's embedding:
    RoPE tells attention how far apart two positions are, but the values it moves carry no position, so a text
    position that finds the red ball's codes by content cannot read where they are without them.
    `answer_pauses` more TXT tokens follow the first before the answer (pause tokens: positions where the text side
    reads the video before it has to write; `max_seq_len` grows by as many).
    `text_center=True` centres each prompt's text states before the encoder's final norm (text_encoder.py);
    `bridge_qk_norm=True` normalises the bridges' queries and keys (bridge.py). `code_levels` (the tokenizer's FSQ
    levels) adds digit-factorised terms to the code embedding and head (code_digits.py); `code_feature_dim > 0` adds
    projections of a per-code table of what the tokenizer's decoder draws for each code (code_features.py).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        codebook_size: int = 1024,
        latent_frames: int = 5,
        latent_height: int = 8,
        latent_width: int = 8,
        max_text_len: int = 128,
        d_model: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        q_lora_rank: int = 0,
        kv_lora_rank: int = 64,
        qk_nope_head_dim: int = 32,
        qk_rope_head_dim: int = 24,
        v_head_dim: int = 32,
        rope_theta: float = 10000.0,
        n_dense_layers: int = 1,
        dense_hidden: int = 704,
        moe_experts: int = 16,
        moe_expert_hidden: int = 64,
        moe_top_k: int = 4,
        moe_groups: int = 4,
        moe_topk_groups: int = 2,
        moe_shared_experts: int = 1,
        moe_score_func: str = "sigmoid",
        moe_route_scale: float = 1.0,
        moe_top_p: float | None = None,
        moe_capacity_factor: float | None = None,
        moe_bias_update_speed: float = 1e-3,
        moe_seq_aux_weight: float = 1e-4,
        moe_z_loss_weight: float = 0.0,
        moe_entropy_weight: float = 0.0,
        moe_dispatch: str = "auto",
        bridge_layers: list[int] | None = None,
        bridge_gate_init: float = 1.0,
        bridge_qk_norm: bool = False,
        text_d_model: int = 128,
        text_layers: int = 2,
        text_heads: int = 4,
        text_center: bool = False,
        norm_eps: float = 1e-6,
        attention_impl: str = "dense",
        sparse_block_size: int = 64,
        sparse_top_k: int = 8,
        mod_layers: list[int] | None = None,
        mod_rho: float = 0.3,
        text_output: bool = False,
        code_levels: list[int] | None = None,
        max_answer_len: int = 0,
        code_feature_dim: int = 0,
        answer_pauses: int = 0,
        code_positions: bool = False,
    ) -> None:
        super().__init__()
        self._validate_config()
        split_rope_dims(qk_rope_head_dim)
        self.rope = VideoRoPE(
            qk_rope_head_dim, latent_height, latent_width, rope_theta, latent_frames * latent_height * latent_width + 1
        )
        self.vocab = TextVocab(codebook_size)
        self.embed = nn.Embedding(self.vocab.size if text_output else codebook_size + 1, d_model)  # + BOS (+ text)
        self.text_encoder = TextEncoder(ByteTokenizer.vocab_size, max_text_len, text_d_model, text_layers, text_heads,
                                        text_center)
        bridges = set(range(n_layers)) if bridge_layers is None else set(bridge_layers)
        sparse = attention_impl == "block_sparse"
        self.blocks = nn.ModuleList()
        for i in range(n_layers):
            attn = MultiHeadLatentAttention(
                d_model, n_heads, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim, q_lora_rank, norm_eps,
                sparse_block_size if sparse else 0, sparse_top_k, sparse_block_offset=1,  # BOS alone in block 0
            )
            if i < n_dense_layers:
                ffn: FeedForward | MoE = FeedForward(d_model, dense_hidden)
            else:
                ffn = build_moe(self.config)
            bridge = None
            if i in bridges:
                bridge = GatedCrossAttention(d_model, text_d_model, n_heads, norm_eps, bridge_gate_init, bridge_qk_norm)
            router = DepthRouter(d_model, mod_rho) if i in (mod_layers or []) else None
            self.blocks.append(Block(attn, ffn, bridge, d_model, norm_eps, router))
        self.norm = nn.RMSNorm(d_model, eps=norm_eps)
        self.lm_head = nn.Linear(d_model, codebook_size, bias=False)
        self.text_head = nn.Linear(d_model, BYTE_CLASSES, bias=False) if text_output else None
        self.apply(self._init_weights)
        self.code_digits = CodeDigits(code_levels, d_model) if code_levels else None  # zero at init
        self.code_features = CodeFeatures(codebook_size, code_feature_dim, d_model) if code_feature_dim else None
        self.row_embed = nn.Parameter(torch.zeros(latent_height, d_model)) if code_positions else None
        self.col_embed = nn.Parameter(torch.zeros(latent_width, d_model)) if code_positions else None

    def _validate_config(self) -> None:
        """Raise one clear ValueError for an inconsistent configuration."""
        c = self.config
        for name in ("codebook_size", "latent_frames", "latent_height", "latent_width", "max_text_len", "d_model",
                     "n_layers", "n_heads", "kv_lora_rank", "v_head_dim", "text_d_model", "text_heads"):  # fmt: skip
            if getattr(c, name) < 1:
                raise ValueError(f"WorldModel config {name} must be at least 1, got {getattr(c, name)}.")
        if not 0 <= c.n_dense_layers <= c.n_layers:
            raise ValueError(f"n_dense_layers must be in [0, n_layers={c.n_layers}], got {c.n_dense_layers}.")
        if c.bridge_layers is not None and any(not 0 <= i < c.n_layers for i in c.bridge_layers):
            raise ValueError(f"bridge_layers must be layer indices in [0, {c.n_layers}), got {c.bridge_layers}.")
        if c.attention_impl not in ("dense", "block_sparse"):
            raise ValueError(f"attention_impl must be 'dense' or 'block_sparse', got {c.attention_impl!r}.")
        if c.sparse_block_size < 1 or c.sparse_top_k < 0:
            raise ValueError(f"sparse_block_size must be >= 1 and sparse_top_k >= 0, got {c.sparse_block_size} "
                             f"and {c.sparse_top_k}.")  # fmt: skip
        if c.mod_layers is not None and any(not 0 <= i < c.n_layers for i in c.mod_layers):
            raise ValueError(f"mod_layers must be layer indices in [0, {c.n_layers}), got {c.mod_layers}.")
        if not 0.0 <= c.mod_rho < 1.0:
            raise ValueError(f"mod_rho (share of tokens skipping a routed block) must be in [0, 1), got {c.mod_rho}.")
        if c.code_levels and (min(c.code_levels) < 2 or math.prod(c.code_levels) != c.codebook_size):
            raise ValueError(f"code_levels must be FSQ levels (each >= 2) whose product is codebook_size "
                             f"{c.codebook_size}, got {c.code_levels}.")
        if c.code_feature_dim < 0:
            raise ValueError(f"code_feature_dim must be >= 0 (0: no code features), got {c.code_feature_dim}.")
        if c.answer_pauses < 0 or (c.answer_pauses and not c.text_output):
            raise ValueError(f"answer_pauses must be >= 0, and only a model with text_output has answers to pause "
                             f"before, got {c.answer_pauses}.")
        if c.text_output and c.max_answer_len < 1:
            raise ValueError(f"text_output needs max_answer_len >= 1 (answer bytes per sequence), got "
                             f"{c.max_answer_len}.")
        if c.text_output and c.mod_layers:
            raise ValueError("text_output cannot be combined with mod_layers: Mixture-of-Depths routing takes one "
                             "position table for the whole batch, and understanding rows place their text apart.")

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """GPT-style init: normal(0, 0.02) for linear, embedding, router and expert weights (gates keep their init)."""
        if isinstance(module, nn.Linear | nn.Embedding | Router):
            nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, Experts):
            nn.init.normal_(module.w13, std=0.02)
            nn.init.normal_(module.w2, std=0.02)

    def restart_text_pathway(self) -> None:
        """Start the text encoder and every bridge afresh (GPT-style init, gates at `bridge_gate_init`), each bridge's
        output projection at zero so that the trained video trunk sees no noise from the new bridges, yet every
        bridge weight gets a gradient from the first step (a zero gate would block them)."""
        self.text_encoder.apply(self._init_weights)
        for block in self.blocks:
            if block.bridge is not None:
                block.bridge.apply(self._init_weights)
                nn.init.zeros_(block.bridge.out.weight)
                nn.init.constant_(block.bridge.gate, self.config.bridge_gate_init)
        for part in (self.text_encoder, *(b.bridge for b in self.blocks if b.bridge is not None)):
            for module in part.modules():
                if isinstance(module, nn.RMSNorm):
                    module.reset_parameters()

    @property
    def bos_token_id(self) -> int:
        """Id of the beginning-of-sequence token (one past the last video code)."""
        return self.config.codebook_size

    @property
    def grid_len(self) -> int:
        """Longest video sequence: every code of the largest latent grid plus BOS."""
        c = self.config
        return c.latent_frames * c.latent_height * c.latent_width + 1

    @property
    def max_seq_len(self) -> int:
        """Longest sequence the model takes: `grid_len`, plus TXT, `answer_pauses` and `max_answer_len` bytes with
        text output."""
        c = self.config
        return self.grid_len + (c.max_answer_len + 1 + c.answer_pauses if c.text_output else 0)

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty KV cache for `batch_size` sequences (latent + RoPE key per layer)."""
        c = self.config
        cache = SparseKVCache if c.attention_impl == "block_sparse" else KVCache  # + the sparse block choices
        return cache(c.n_layers, batch_size, self.max_seq_len, c.kv_lora_rank, c.qk_rope_head_dim)

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> TextContext:
        """ByteTokenizer output `(ids (B, L), mask (B, L))` -> TextContext(states (B, L, text_d_model), mask)."""
        device = self.embed.weight.device
        ids, mask = ids.to(device), mask.to(device)
        return TextContext(self.text_encoder(ids, mask).to(self.embed.weight.dtype), mask)

    def moe_layers(self) -> list[tuple[int, MoE]]:
        """(layer index, MoE) for every MoE layer."""
        return [(i, b.ffn) for i, b in enumerate(self.blocks) if isinstance(b.ffn, MoE)]

    @torch.no_grad()
    def calibrate_depth_routers(self, input_ids: torch.Tensor, text: TextContext | None = None) -> dict[int, float]:
        """Set each Mixture-of-Depths layer's predictor threshold to the `mod_rho`-quantile of its logits on
        `input_ids (B, N)`, so that about `mod_rho` of such tokens skip it when generating (the running threshold
        kept during training can lag the predictor). Layer by layer, in eval-mode routing, since a layer's input
        depends on the decisions before it. Returns {layer: threshold}."""
        was_training = self.training
        self.eval()
        thresholds: dict[int, float] = {}
        for i, block in enumerate(self.blocks):
            router = block.depth_router
            if router is None:
                continue
            logits: list[torch.Tensor] = []
            hook = router.predictor.register_forward_hook(lambda _m, _a, out, seen=logits: seen.append(out.flatten()))
            try:
                self(input_ids, text, router_stats=False)
            finally:
                hook.remove()
            router.threshold.fill_(torch.quantile(torch.cat(logits).float(), router.rho).item())
            thresholds[i] = router.threshold.item()
        self.train(was_training)
        return thresholds

    def update_router_biases(self) -> None:
        """One balancing step for every router (call once per optimiser step, on every process): the MoE
        routers' selection biases and the Mixture-of-Depths predictors' thresholds."""
        for _, moe in self.moe_layers():
            moe.router.update_bias()
        for block in self.blocks:
            if block.depth_router is not None:
                block.depth_router.update_threshold()

    def forward(
        self,
        input_ids: torch.Tensor,
        text: TextContext | None = None,
        cache: KVCache | None = None,
        router_stats: bool = True,
        text_start: torch.Tensor | None = None,
    ) -> WorldModelOutput:
        """input_ids (B, N) -> logits (B, N, codebook_size); with a cache, positions start at `cache.length`.

        `router_stats=False` (decoding, eval mode) skips the MoE auxiliary losses and routing statistics
        (`aux_loss` is then 0 and `stats` holds only what Mixture-of-Depths reports).
        Understanding rows (`text_output`): `text_start (B,)` is each row's sequence index of TXT (also when TXT is
        already in the cache); positions from it on are text and get text positions (text_output.py).
        """
        if input_ids.ndim != 2 or input_ids.shape[1] == 0 or input_ids.dtype != torch.long:
            raise ValueError(
                f"input_ids must be a non-empty LongTensor (B, N), got {input_ids.dtype} {tuple(input_ids.shape)}."
            )
        start, n = (cache.length if cache is not None else 0), input_ids.shape[1]
        self._check_ids(input_ids, start, text_start)
        if start + n > self.max_seq_len:
            raise ValueError(
                f"Sequence of {start + n} tokens (cache {start} + input {n}) is longer than max_seq_len "
                f"{self.max_seq_len} = latent_frames*latent_height*latent_width + 1 (+ max_answer_len + 1 with text)."
            )
        x = self.embed(input_ids)  # (B, N, D)
        for terms in (self.code_digits, self.code_features):
            if terms is not None:
                x = x + terms.embed_codes(input_ids)
        c = self.config
        if text_start is None:
            cos, sin = self.rope(start, n, input_ids.device)  # (N, dr) each
        else:  # per row: video grid before TXT, text positions from it on
            coords = sequence_coords(start, n, c.latent_height, c.latent_width, text_start)  # (B, N, 3)
            cos, sin = self.rope.at(coords, input_ids.device)  # (B, N, dr) each
        if self.row_embed is not None:
            grid = grid_positions(start, n, c.latent_height, c.latent_width).to(input_ids.device)  # (N, 3)
            where = self.row_embed[grid[:, 1]] + self.col_embed[grid[:, 2]]  # (N, D)
            x = x + where * (input_ids < c.codebook_size)[..., None].to(x.dtype)  # codes only: not BOS, not text
        aux = x.new_zeros((), dtype=torch.float32)
        stats: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x, block_aux, block_stats = block(x, (cos, sin), text, cache, i, router_stats)
            if block_aux is not None:
                aux = aux + block_aux
            stats.update({f"layer{i}/{k}": v for k, v in block_stats.items()})
        if cache is not None:
            cache.advance(input_ids.shape[1])
        h = self.norm(x)  # (B, N, D)
        logits = self.lm_head(h)  # (B, N, V)
        for terms in (self.code_digits, self.code_features):
            if terms is not None:
                logits = logits + terms.code_logits(h)
        text_logits = self.text_head(h) if self.text_head is not None else None  # (B, N, 257)
        return WorldModelOutput(logits=logits, aux_loss=aux, stats=stats, text_logits=text_logits, hidden_states=h)

    def _check_ids(self, input_ids: torch.Tensor, start: int, text_start: torch.Tensor | None) -> None:
        """One clear ValueError for ids outside the vocabulary, text ids before TXT or codes after it, and video
        sequences beyond the latent grid."""
        lo, hi = (int(v) for v in torch.aminmax(input_ids))
        top = self.vocab.size - 1 if self.config.text_output else self.bos_token_id
        if lo < 0 or hi > top:
            text = f", TXT, EOS or bytes up to {top}" if self.config.text_output else ""
            raise ValueError(
                f"input_ids must be video codes in [0, {self.config.codebook_size}) or BOS={self.bos_token_id}{text}, "
                f"got values in [{lo}, {hi}]."
            )
        if text_start is None:
            if hi > self.bos_token_id or self.config.text_output and start + input_ids.shape[1] > self.grid_len:
                raise ValueError("text tokens and positions beyond the video grid need text_start (the index of TXT).")
            return
        if not self.config.text_output:
            raise ValueError("text_start is for world models with text_output; this one has none.")
        if text_start.shape != input_ids.shape[:1]:
            raise ValueError(f"text_start must hold one index per row (B,), got {tuple(text_start.shape)}.")
        pos = torch.arange(start, start + input_ids.shape[1], device=input_ids.device)  # (N,)
        is_text = pos[None] >= text_start.to(input_ids.device)[:, None]  # (B, N)
        if ((input_ids > self.bos_token_id) != is_text).any() or (text_start > self.grid_len).any():
            raise ValueError("text tokens (TXT, EOS, bytes) must fill each row from text_start on, after at most "
                             "the video grid's codes, and video codes or BOS come before it.")
