"""Mixture-of-Depths token routing: deeper blocks work on only part of the tokens.

Two small heads score every token from its own state:

* the *router* (linear) gives the weight of the block's output: a token that enters adds
  ``sigmoid(router logit) * block update`` to its state (so the router learns through the scale), a token that
  skips passes by the residual unchanged;
* the causal *predictor* (an MLP) decides who enters, in training and when generating alike: a token enters iff
  its predictor logit exceeds ``threshold``.

Why not the Mixture-of-Depths paper's training rule (the top ``(1 - rho)`` router scores of each sequence enter)?
Top-k over a sequence is not causal: whether token ``p`` enters would depend on later tokens, so the training
forward would see the future, and generation (which must decide causally) would run another function than the
one trained. Here the top-k survives only as the predictor's target (the paper's causal auxiliary): a BCE between
the predictor's logits, computed on detached states, and the top-k membership of the detached router logits of
each sequence. The predictor thus learns which tokens the router ranks highest, and the backbone is never trained
by that loss. ``threshold`` is a running ``rho``-quantile of the predictor's logits over training batches, so about
``rho`` of the tokens skip while the predictor still knows little more than the ``1 - rho`` prior (a fixed
threshold of 0 then lets every token in). Within a step it is a constant: each training forward records its
batch's quantile and ``update_threshold()`` (once per optimiser step, beside the MoE bias update) moves the
threshold, so a forward's decision for token ``p`` depends on token ``p`` alone. The running quantile is a short
EMA (momentum 0.5): while the predictor knows little more than the prior its logits sit in a narrow band that
drifts as it trains, and a long average lagged far enough behind to let almost every token in at evaluation
(measured: 2 % skipped with momentum 0.9, 16 % with 0.5, for rho 0.3). ``WorldModel.calibrate_depth_routers``
sets the threshold on data after training.

Attention rule (as in the Mixture-of-Depths paper): a routed layer's attention runs among the entering tokens
only; a token that skips the layer is neither a query nor a key there. Without a KV cache the entering tokens are
compacted into a (B, k) sequence (in position order, with their own RoPE positions; rows that enter fewer tokens
are padded with hidden skipped positions), so attention costs about ``(1 - rho)^2`` of the dense product and the
rest of the block ``1 - rho``. KV cache rule (what makes cached decoding equal the full forward): every token
still writes its latent to the routed layer's cache, with a visibility flag (``KVCache.key_valid``) that is False
when it skipped; attention hides flagged keys from every other query. So a layer's cache holds one entry per
position (``crop(n)`` stays a slice) and a token's key never depends on a later decision. With block-sparse
attention a routed layer does not compact (the block layout needs the position grid): it runs the block-sparse
product over every position with the skipped keys hidden and keeps the routed queries' rows, so there
Mixture-of-Depths saves only the rest of the block.

Use (see block.py): ``route, loss = depth_router(x)``; run the block on ``route.gather(x)``; then
``depth_router.add(x, route, update)`` adds the weighted update of the entering tokens back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Route:
    """Which tokens enter a block.

    index: (B, k) positions of the entering tokens in increasing order; rows may enter different numbers of tokens
        and shorter rows are padded with skipped positions (after their entering ones).
    weight: (B, k) sigmoid router scores. valid: (B, k) False on padding (the block's output there is dropped).
    all_valid: True when no row is padded, so callers can skip masking.
    """

    index: torch.Tensor
    weight: torch.Tensor
    valid: torch.Tensor
    all_valid: bool = False

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Entering tokens of ``x``: (B, N, D) -> (B, k, D)."""
        return x.gather(1, self.index[..., None].expand(-1, -1, x.shape[-1]))

    def entered(self, n: int) -> torch.Tensor:
        """Boolean (B, n) mask of the tokens that entered the block."""
        hits = torch.zeros(self.index.shape[0], n, dtype=torch.int32, device=self.index.device)
        return hits.scatter_add(1, self.index, self.valid.to(torch.int32)) > 0


class DepthRouter(nn.Module):
    """Router + causal predictor for one Mixture-of-Depths block.

    Args:
        dim: token state width.
        rho: share of tokens that skip the block, in ``[0, 1)`` (default 0.3): the top-k target keeps
            ``1 - rho`` of each sequence and the threshold tracks the ``rho``-quantile of the predictor's logits.
        predictor_hidden: hidden width of the predictor MLP (default ``max(8, dim // 4)``).
    """

    def __init__(self, dim: int, rho: float = 0.3, predictor_hidden: int | None = None):
        super().__init__()
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho (share of skipped tokens) must be in [0, 1), got {rho}.")
        self.rho = rho
        self.router = nn.Linear(dim, 1)
        hidden = predictor_hidden or max(8, dim // 4)
        self.predictor = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.register_buffer("threshold", torch.zeros(()))  # predictor logit above which a token enters
        self.register_buffer("threshold_steps", torch.zeros((), dtype=torch.long))
        # Sum and count of the batch quantiles seen since the last update_threshold() (like the MoE router's load).
        self.register_buffer("quantile_sum", torch.zeros(2), persistent=False)
        self.threshold_momentum = 0.5

    def capacity(self, n: int) -> int:
        """Tokens of a sequence of ``n`` in the top-k target: ``n - round(rho * n)``, at least 1."""
        return max(1, n - round(self.rho * n))

    def forward(self, x: torch.Tensor) -> tuple[Route, torch.Tensor]:
        """Decide which tokens of ``x`` (B, N, D) enter, each from its own state (causal).

        Returns (route, predictor loss): in training the BCE of the predictor against the top-k membership of the
        detached router logits of each sequence (and this batch's logit quantile is recorded for
        ``update_threshold``); 0 in eval mode.
        """
        logits = self.router(x).squeeze(-1).float()  # (B, N)
        guess = self.predictor(x.detach()).squeeze(-1).float()  # (B, N), trained by its own loss only
        enter = guess.detach() > self.threshold  # (B, N)
        k = max(1, int(enter.sum(-1).max()))  # one padding slot when no token enters: no empty tensors
        # Entering positions first (in order), then padding taken from skipped positions (weight 0).
        index = (~enter).to(torch.int8).argsort(dim=-1, stable=True)[:, :k]  # (B, k)
        valid = enter.gather(1, index)  # (B, k)
        weight = torch.sigmoid(logits.gather(1, index)).to(x.dtype)  # (B, k)
        route = Route(index=index, weight=weight, valid=valid, all_valid=bool(valid.all()))
        if not self.training:
            return route, logits.new_zeros(())
        top = logits.detach().topk(self.capacity(x.shape[1]), dim=-1).indices  # (B, k') the router's favourites
        target = torch.zeros_like(logits).scatter(1, top, 1.0)  # (B, N)
        with torch.no_grad():
            self.quantile_sum += torch.stack([torch.quantile(guess.detach().flatten(), self.rho), logits.new_ones(())])
        return route, F.binary_cross_entropy_with_logits(guess, target)

    def add(self, x: torch.Tensor, route: Route, update: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) + the block's residual update (B, k, D) of the routed tokens, each scaled by its router
        weight (padding adds nothing) -> (B, N, D)."""
        scale = (route.weight * route.valid).unsqueeze(-1)  # (B, k, 1)
        return x.scatter_add(1, route.index[..., None].expand_as(update), (update * scale).to(x.dtype))

    @torch.no_grad()
    def update_threshold(self) -> None:
        """Move ``threshold`` towards the mean ``rho``-quantile of the predictor logits recorded since the last call
        (EMA; averaged over processes when torch.distributed is initialised), then reset the record."""
        seen = self.quantile_sum.clone()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(seen)
        if seen[1] > 0:
            momentum = self.threshold_momentum if self.threshold_steps > 0 else 0.0
            self.threshold.mul_(momentum).add_((1 - momentum) * seen[0] / seen[1])
            self.threshold_steps += 1
        self.quantile_sum.zero_()
