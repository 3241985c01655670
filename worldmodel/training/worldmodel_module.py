"""WorldModelModule: trains the MoE world model by next-token cross-entropy on cached video codes given text.

Batches come from `worldmodel.datasets.tokens.TokenDataModule`: `{"codes": LongTensor (B, t, h, w), "captions":
list[str]}`. Input is `[BOS] + codes[:-1]` (raster order t, h, w), target is `codes`. Each caption is replaced by
the empty prompt (= unconditional) with probability `text_dropout` (seeded by seed, rank and step), so that
classifier-free guidance works at sampling time. The loss adds the MoE auxiliary losses; the routers' balancing
biases are updated once per optimiser step. Export: `export_dir` gets `WorldModel.save_pretrained` after every
validation and at the end of training, and any checkpoint exports with `worldmodel export CHECKPOINT OUT_DIR`.

Joint understanding (a world model with `text_output`, a data module with `understanding=True`): a share
`understanding_share` of each batch's rows become understanding examples (docs/sequence-layout.md): the row's codes
cut to the example's latent frames, its question (or "describe the video") through the bridge, its answer bytes
after TXT, cross-entropy of the byte head on the answer bytes and EOS only (`{stage}/text_ce`). The other rows train
generation as above; the two losses add (`text_weight` on the text one).

Caption probe (`caption_probe_weight > 0`): a linear probe on the final hidden state of every video position of the
generation rows predicts the palette colours that the row's caption names (a soft target, uniform over them; rows
whose caption names none are skipped). Its loss reaches the trunk, the bridges and the text encoder, so the colour
word must travel from the caption to every code position; without it the small tokenizer's world model learned to
read a caption's scenario and count but not its colour (docs/world-model.md). The probe is training-only: it is
not part of the exported world model.

Binding probe (`binding_probe_weight > 0`): the same idea for questions. On the understanding rows whose question
names balls ("what size is the red ball?"), a linear probe on the final hidden state of every code position says
whether a named ball touches that code's latent cell (the annotation's positions and radii; the items' `"cells"`).
Answers about a named ball were far worse in several-ball clips than in one-ball clips (docs/world-model.md, stage
10): the question's colour must be made to reach the codes it refers to. Training-only, like the caption probe.

Grounding (`grounding_weight > 0`): the binding probe made the codes mark the named ball and the answers did not
move; what fails is the answer reading it (docs/world-model.md, stage 11). So on the same rows, head 0 of the last
block's attention, at every position that predicts an answer byte, is trained to put its mass on the codes of the
named ball: the loss is `-log` of the attention mass on those cells (supervised attention, as in grounded VQA).
It shapes the model's own attention, so unlike the probes it stays in the exported model.

Code-feature regression (`feature_regression_weight > 0`, a world model with decoder code features,
`worldmodel/model/code_features.py`): a linear head on the final hidden state of every generation position predicts
the feature row of the code at that position (standardised: where the decoder draws the ball in its patch, how it
moves, its colour), by mean squared error. Cross-entropy scores a code one patch-pixel off as wrong as any other;
this target rewards the near miss, so the trunk has to carry where the ball will be as a number it can extrapolate.
Training-only, like the caption probe. `feature_lr_scale` multiplies the learning rate of the code-feature
projections (`model.code_features.*`): added at zero to a trained model, at the trunk's rate they stayed a few
percent of the code embedding (docs/world-model.md, stage 6). `position_lr_scale` does the same for the row and
column embeddings of `code_positions` (`model.row_embed`, `model.col_embed`).

Against rollout drift (two options, off by default; docs/world-model.md, stage 5):
- `scheduled_sampling > 0` (parallel scheduled sampling, Duckworth et al. 2019): a no-grad forward in eval mode
  predicts every code greedily (as rollouts decode), and that share of the generation rows' input codes is replaced
  by the model's own prediction of it; the targets stay the true codes, so the model learns to carry on correctly
  after its own mistakes.
- `motion_weight > 1`: codes that differ from the code at the same place one latent frame earlier (a ball arriving
  or leaving) weigh `motion_weight` in the code cross-entropy, the rest 1 (a weighted mean), so that predicting the
  background unchanged stops paying for most of the loss. `{stage}/ce` stays the plain cross-entropy.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from worldmodel.datasets.palette import COLOR_NAMES, caption_colours
from worldmodel.model import WorldModel
from worldmodel.model.text_output import IGNORE, understanding_batch
from worldmodel.pretrained import load_pretrained
from worldmodel.tokenizers.text import ByteTokenizer
from worldmodel.training.common import ExportingModule


def caption_probe_loss(probe: nn.Module, hidden: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """Cross-entropy of `probe` (D -> len(COLOR_NAMES)) at every position of `hidden (B, N, D)` against the colours
    each caption names (uniform over them), averaged over the rows that name any (0, still with a gradient path, if
    none)."""
    targets = torch.zeros(len(captions), len(COLOR_NAMES))
    for row, caption in enumerate(captions):
        for name in caption_colours(caption):
            targets[row, COLOR_NAMES.index(name)] = 1.0
    named = targets.sum(1)  # (B,)
    targets = (targets / named.clamp_min(1.0)[:, None]).to(hidden.device)
    logits = probe(hidden.float())  # (B, N, C)
    per_row = -(targets[:, None] * F.log_softmax(logits, dim=-1)).sum(-1).mean(1)  # (B,)
    keep = (named > 0).to(hidden.device, per_row.dtype)
    return (per_row * keep).sum() / keep.sum().clamp_min(1.0)


def binding_probe_loss(probe: nn.Module, hidden: torch.Tensor, cells: list[tuple[int, ...] | None]) -> torch.Tensor:
    """Binary cross-entropy of `probe` (D -> 1) at the code positions of understanding rows `hidden (U, L, D)`
    (`[BOS] codes [TXT] ...`: codes at 1..n) against `cells[i]` (whether a ball the row's question names touches that
    code's cell), over the rows that have them (0, still with a gradient path, if none)."""
    losses = [F.binary_cross_entropy_with_logits(probe(hidden[i, 1 : 1 + len(c)].float())[:, 0],
                                                 torch.tensor(c, dtype=torch.float32, device=hidden.device),
                                                 reduction="sum")
              for i, c in enumerate(cells) if c is not None]
    count = sum(len(c) for c in cells if c is not None)
    return torch.stack(losses).sum() / count if losses else probe(hidden[:, :1].float()).sum() * 0.0


class QueryKeyCapture:
    """Stands in for an MLA block's `attention_product`: runs it and keeps the call's queries and keys
    `(B, H, N, dk)` (training-only, for the grounding loss; `clear()` drops them)."""

    def __init__(self, product: Any) -> None:
        self.product = product
        self.q: torch.Tensor | None = None
        self.k: torch.Tensor | None = None

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offset: int, scale: float) -> torch.Tensor:
        """The wrapped attention product, keeping `q` and `k`."""
        self.q, self.k = q, k
        return self.product(q, k, v, offset, scale)

    def clear(self) -> None:
        """Drop the kept tensors (and the graph they hold)."""
        self.q = self.k = None


def grounding_loss(q: torch.Tensor, k: torch.Tensor, scale: float, targets: torch.Tensor,
                   cells: list[tuple[int, ...] | None]) -> torch.Tensor:
    """Mean `-log` attention mass of head 0 on the named ball's codes, at every answer position of the rows with
    named cells: q, k `(U, H, L, dk)` of `[BOS] codes [TXT] ...` rows (codes at 1..n), `targets (U, L)` (positions
    that predict an answer byte or EOS are not `IGNORE`). 0 with a gradient path when no row names a covered ball."""
    losses = []
    for i, c in enumerate(cells):
        if c is None or not any(c):
            continue
        pos = (targets[i] != IGNORE).nonzero()[:, 0].to(q.device)  # (M,) answer positions
        logits = (q[i, 0, pos] @ k[i, 0].T) * scale  # (M, L)
        keys = torch.arange(k.shape[2], device=q.device)
        logits = logits.masked_fill(keys[None] > pos[:, None], float("-inf"))  # causal
        named = torch.zeros(k.shape[2], dtype=torch.bool, device=q.device)
        named[1 : 1 + len(c)] = torch.tensor(c, dtype=torch.bool, device=q.device)
        mass = logits.float().softmax(-1)[:, named].sum(-1)  # (M,)
        losses.append(-torch.log(mass.clamp_min(1e-6)).mean())
    return torch.stack(losses).mean() if losses else q[:, :1, :1].sum() * 0.0


def feature_regression_loss(head: nn.Module, hidden: torch.Tensor, targets: torch.Tensor,
                            table: torch.Tensor) -> torch.Tensor:
    """Mean squared error of `head` (D -> F) at every position of `hidden (B, N, D)` against `table (K, F)` rows of
    the target codes `targets (B, N)` (each column standardised over the codes, so every feature weighs alike)."""
    scale = table.std(0).clamp_min(1e-6)  # (F,)
    wanted = (table[targets] - table.mean(0)) / scale  # (B, N, F)
    return F.mse_loss(head(hidden.float()), wanted.float())


def motion_weights(codes: torch.Tensor, weight: float) -> torch.Tensor:
    """codes (B, t, h, w) -> per-target weights (B, t*h*w): `weight` where a code differs from the code at the same
    (h, w) one latent frame earlier, 1 elsewhere (and on the first latent frame)."""
    changed = torch.zeros_like(codes, dtype=torch.bool)
    changed[:, 1:] = codes[:, 1:] != codes[:, :-1]
    return (1.0 + (weight - 1.0) * changed.float()).flatten(1)


def scheduled_sampling_inputs(model: nn.Module, ids: torch.Tensor, text: Any, share: float,
                              generator: torch.Generator) -> torch.Tensor:
    """ids (B, N) = [BOS] + codes[:-1] -> the same with a `share` of the code positions (never BOS) replaced by the
    model's greedy prediction of that code (one no-grad forward in eval mode; the model's mode is restored)."""
    was_training = model.training
    with torch.no_grad():
        logits = model.eval()(ids, text, router_stats=False).logits  # (B, N, V): logits[:, i] predicts ids[:, i + 1]
    model.train(was_training)
    predicted = torch.cat([ids[:, :1], logits[:, :-1].argmax(-1)], dim=1)  # (B, N)
    replace = torch.rand(ids.shape, generator=generator) < share
    replace[:, 0] = False
    return torch.where(replace.to(ids.device), predicted, ids)


class WorldModelModule(ExportingModule):
    """Lightning wrapper of a `WorldModel`.

    Args:
        model_config: keyword arguments of `WorldModel` (its `register_to_config` fields); with `pretrained`, they
            override the saved config (the weights must still fit it, e.g. `text_center` changes no weight).
        lr, weight_decay, betas: AdamW (no decay on norms, gates and biases); linear warmup for `warmup_steps`,
            then cosine decay to `lr * min_lr_ratio` at the trainer's last step.
        text_dropout: probability of training a sample unconditionally (empty prompt).
        aux_weight: weight of the MoE auxiliary losses (their own weights live in the model config).
        seed: seeds the text-dropout draws.
        export_dir: if set, `save_pretrained` the world model there after each validation and at the end.
        pretrained: start from a `save_pretrained` folder instead of random weights.
        restart_text: with `pretrained`, start the text encoder and the bridges afresh and keep the rest
            (`WorldModel.restart_text_pathway`): for a video trunk whose text pathway stopped reading captions.
        understanding_share: share of each batch trained on understanding examples when the world model has
            `text_output` (at least one row, never all); `text_weight` weighs their byte loss.
        caption_probe_weight: weight of the caption-colour probe loss (module docstring; 0 = off).
        binding_probe_weight: weight of the binding probe (module docstring; 0 = off).
        grounding_weight: weight of the grounding loss on the last block's attention (module docstring; 0 = off).
        scheduled_sampling: share of generation input codes replaced by the model's own greedy predictions in
            training (module docstring; 0 = off).
        motion_weight: loss weight of codes that changed since the previous latent frame (module docstring; 1 = off).
        feature_regression_weight: weight of the code-feature regression loss (module docstring; 0 = off; needs a
            world model with `code_feature_dim`).
        feature_lr_scale: factor on `lr` for the code-feature projections (module docstring; 1 = the trunk's).
        position_lr_scale: factor on `lr` for the code-position embeddings (`code_positions`; 1 = the trunk's).
    """

    def __init__(
        self,
        model_config: dict[str, Any] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        text_dropout: float = 0.1,
        aux_weight: float = 1.0,
        seed: int = 0,
        export_dir: str | None = None,
        pretrained: str | None = None,
        understanding_share: float = 0.25,
        text_weight: float = 1.0,
        restart_text: bool = False,
        caption_probe_weight: float = 0.0,
        scheduled_sampling: float = 0.0,
        motion_weight: float = 1.0,
        feature_regression_weight: float = 0.0,
        feature_lr_scale: float = 1.0,
        position_lr_scale: float = 1.0,
        binding_probe_weight: float = 0.0,
        grounding_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= text_dropout <= 1.0:
            raise ValueError(f"text_dropout must be a probability in [0, 1], got {text_dropout}.")
        if not 0.0 <= understanding_share < 1.0:
            raise ValueError(f"understanding_share must be in [0, 1) (generation keeps a share), got "
                             f"{understanding_share}.")
        if caption_probe_weight < 0:
            raise ValueError(f"caption_probe_weight must be >= 0 (0 = off), got {caption_probe_weight}.")
        if not 0.0 <= scheduled_sampling <= 1.0:
            raise ValueError(f"scheduled_sampling must be a share in [0, 1] (0 = off), got {scheduled_sampling}.")
        if motion_weight < 1.0:
            raise ValueError(f"motion_weight must be >= 1 (1 = plain cross-entropy), got {motion_weight}.")
        if feature_regression_weight < 0 or feature_lr_scale <= 0:
            raise ValueError(f"feature_regression_weight must be >= 0 (0 = off) and feature_lr_scale > 0, got "
                             f"{feature_regression_weight} and {feature_lr_scale}.")
        if binding_probe_weight < 0:
            raise ValueError(f"binding_probe_weight must be >= 0 (0 = off), got {binding_probe_weight}.")
        if grounding_weight < 0:
            raise ValueError(f"grounding_weight must be >= 0 (0 = off), got {grounding_weight}.")
        if position_lr_scale <= 0:
            raise ValueError(f"position_lr_scale must be > 0, got {position_lr_scale}.")
        if restart_text and not pretrained:
            raise ValueError("restart_text keeps a pretrained video trunk: give pretrained (a save_pretrained folder).")
        self.save_hyperparameters()
        if pretrained:
            self.model = load_pretrained(WorldModel, pretrained, **(model_config or {})).train()  # loads in eval mode
            if restart_text:
                self.model.restart_text_pathway()
        else:
            self.model = WorldModel(**(model_config or {}))
        self.text_tokenizer = ByteTokenizer(self.model.config.max_text_len)
        self.caption_probe = (nn.Linear(self.model.config.d_model, len(COLOR_NAMES)) if caption_probe_weight > 0
                              else None)
        features = self.model.code_features
        if (feature_regression_weight > 0 or feature_lr_scale != 1.0) and features is None:
            raise ValueError("feature_regression_weight and feature_lr_scale need a world model with decoder code "
                             "features (code_feature_dim > 0): start from scripts/add_code_features.py's output")
        self.feature_head = (nn.Linear(self.model.config.d_model, features.table.shape[1])
                             if feature_regression_weight > 0 else None)
        if binding_probe_weight > 0 and not self.model.config.text_output:
            raise ValueError("binding_probe_weight needs a world model with text_output (understanding rows)")
        self.binding_probe = nn.Linear(self.model.config.d_model, 1) if binding_probe_weight > 0 else None
        self.grounding = None
        if grounding_weight > 0:
            last = self.model.blocks[-1].attn
            if not self.model.config.text_output or last.sparse_block_size:
                raise ValueError("grounding_weight needs a world model with text_output and dense attention")
            self.grounding = last.attention_product = QueryKeyCapture(last.attention_product)
        if position_lr_scale != 1.0 and not self.model.config.code_positions:
            raise ValueError("position_lr_scale needs a world model with code_positions: true")

    def lr_scales(self) -> dict[str, float]:
        """`feature_lr_scale` for the code-feature projections, `position_lr_scale` for the code-position
        embeddings (each when not 1)."""
        hp = self.hparams
        scales = {"model.code_features.": hp.feature_lr_scale, "model.row_embed": hp.position_lr_scale,
                  "model.col_embed": hp.position_lr_scale}
        return {prefix: scale for prefix, scale in scales.items() if scale != 1.0}

    def _inputs(self, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """codes (B, t, h, w) -> (input ids (B, N) = [BOS] + codes[:-1], targets (B, N))."""
        if codes.ndim != 4:
            raise ValueError(f"Batch codes must be a LongTensor (B, t, h, w), got shape {tuple(codes.shape)}.")
        targets = codes.reshape(codes.shape[0], -1).long()  # (B, N)
        bos = torch.full_like(targets[:, :1], self.model.bos_token_id)
        return torch.cat([bos, targets[:, :-1]], dim=1), targets

    def _drop_captions(self, captions: list[str]) -> list[str]:
        """Replace each caption by "" with probability `text_dropout` (seeded by seed, rank, step)."""
        hp = self.hparams
        generator = torch.Generator().manual_seed(hash((hp.seed, self.global_rank, self.global_step)) % 2**63)
        drop = torch.rand(len(captions), generator=generator) < hp.text_dropout
        return ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]

    def _understanding_rows(self, batch: dict[str, Any], step: int) -> list[int]:
        """Rows of `batch` that train understanding: `understanding_share` of them (at least one, never all),
        chosen by a generator seeded by seed, rank and step; none without text output or examples."""
        share, rows = self.hparams.understanding_share, batch["codes"].shape[0]
        if not self.model.config.text_output or share == 0:
            return []
        if "understanding" not in batch:
            raise ValueError("the world model has text_output but the batches carry no understanding examples: "
                             "give the data module understanding: true (or set understanding_share: 0)")
        count = max(1, round(share * rows))
        if count >= rows:
            raise ValueError(f"a batch of {rows} rows cannot hold understanding_share {share} of understanding "
                             "examples and still train generation: raise the batch size")
        generator = torch.Generator().manual_seed(hash((self.hparams.seed, self.global_rank, step, 1)) % 2**63)
        return sorted(torch.randperm(rows, generator=generator)[:count].tolist())

    def _understanding_loss(self, batch: dict[str, Any], rows: list[int]
                            ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(byte cross-entropy on the answers, MoE aux loss, {"binding_probe", "grounding": loss} of the options
        that are on) of the understanding examples of `rows`."""
        examples = [batch["understanding"][i] for i in rows]
        codes = [batch["codes"][i, : e["latent_frames"]].reshape(-1) for i, e in zip(rows, examples, strict=True)]
        answers = [e["answer"].encode("utf-8") for e in examples]
        longest = max(len(a) for a in answers)
        if longest > self.model.config.max_answer_len:
            raise ValueError(f"an answer of {longest} bytes exceeds the world model's max_answer_len "
                             f"{self.model.config.max_answer_len}: raise it (descriptions take up to 320 bytes)")
        ids, start, targets = understanding_batch(codes, answers, self.model.vocab,
                                                  self.model.config.answer_pauses)  # (U, L) each, start (U,)
        device = batch["codes"].device
        text = self.model.encode_text(*self.text_tokenizer.encode([e["prompt"] for e in examples]))
        out = self.model(ids.to(device), text, text_start=start.to(device))
        ce = F.cross_entropy(out.text_logits.float().flatten(0, 1), targets.to(device).flatten(), ignore_index=IGNORE)
        cells = [e.get("cells") for e in examples]
        extra = {}
        if self.binding_probe is not None:
            extra["binding_probe"] = binding_probe_loss(self.binding_probe, out.hidden_states, cells)
        if self.grounding is not None:
            attn = self.model.blocks[-1].attn
            extra["grounding"] = grounding_loss(self.grounding.q, self.grounding.k, attn.scale, targets, cells)
            self.grounding.clear()
        return ce, out.aux_loss, extra

    def _step(self, batch: dict[str, Any], stage: str, step: int) -> torch.Tensor:
        hp = self.hparams
        ids, targets = self._inputs(batch["codes"])
        weights = motion_weights(batch["codes"], hp.motion_weight)  # (B, N)
        captions = list(batch["captions"])
        if stage == "train":
            captions = self._drop_captions(captions)
        rows = self._understanding_rows(batch, step)
        if rows:  # the other rows train generation
            keep = [i for i in range(ids.shape[0]) if i not in rows]
            ids, targets, weights, captions = ids[keep], targets[keep], weights[keep], [captions[i] for i in keep]
        text = self.model.encode_text(*self.text_tokenizer.encode(captions))
        if stage == "train" and hp.scheduled_sampling > 0:
            generator = torch.Generator().manual_seed(hash((hp.seed, self.global_rank, step, 2)) % 2**63)
            ids = scheduled_sampling_inputs(self.model, ids, text, hp.scheduled_sampling, generator)
        out = self.model(ids, text)
        if self.grounding is not None:
            self.grounding.clear()  # the generation rows' queries and keys are not needed
        per_code = F.cross_entropy(out.logits.float().flatten(0, 1), targets.flatten(), reduction="none")  # (B*N,)
        ce = per_code.mean()
        weights = weights.flatten().to(per_code.device)
        loss = ce if hp.motion_weight == 1.0 else (per_code * weights).sum() / weights.sum()
        aux = out.aux_loss
        bsz, sync = batch["codes"].shape[0], stage != "train"
        if rows:
            text_ce, text_aux, extra = self._understanding_loss(batch, rows)
            loss, aux = loss + hp.text_weight * text_ce, aux + text_aux
            self.log(f"{stage}/text_ce", text_ce, prog_bar=True, sync_dist=sync, batch_size=len(rows))
            for name, value in extra.items():
                loss = loss + hp[f"{name}_weight"] * value
                self.log(f"{stage}/{name}", value, sync_dist=sync, batch_size=len(rows))
        if self.caption_probe is not None:
            probe = caption_probe_loss(self.caption_probe, out.hidden_states, captions)
            loss = loss + hp.caption_probe_weight * probe
            self.log(f"{stage}/caption_probe", probe, sync_dist=sync, batch_size=bsz)
        if self.feature_head is not None:
            regression = feature_regression_loss(self.feature_head, out.hidden_states, targets,
                                                 self.model.code_features.table)
            loss = loss + hp.feature_regression_weight * regression
            self.log(f"{stage}/feature_regression", regression, sync_dist=sync, batch_size=bsz)
        loss = loss + hp.aux_weight * aux
        self.log(f"{stage}/ce", ce, prog_bar=True, sync_dist=sync, batch_size=bsz)
        if stage == "val" and len(captions) > 1:
            self.log_dict(self._caption_use(ids, targets, captions, out.logits), sync_dist=True, batch_size=bsz)
        self.log_dict({f"{stage}/loss": loss, f"{stage}/aux_loss": aux}, sync_dist=sync, batch_size=bsz)
        if stage == "train":
            self.log_dict(self._routing_logs(out.stats), batch_size=bsz)
        return loss

    def _caption_use(self, ids: torch.Tensor, targets: torch.Tensor, captions: list[str],
                     logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the first latent frame's codes given each row's own caption and given the next row's
        (`val/ce_first_frame`, `val/ce_first_frame_wrong_caption`): a model that reads its captions scores the
        wrong caption worse; equal figures mean the text is ignored."""
        frame = self.model.config.latent_height * self.model.config.latent_width
        wrong = self.model.encode_text(*self.text_tokenizer.encode(captions[1:] + captions[:1]))
        wrong_logits = self.model(ids[:, :frame], wrong).logits  # (B, frame, V)
        first = targets[:, :frame].flatten()
        return {"val/ce_first_frame": F.cross_entropy(logits[:, :frame].float().flatten(0, 1), first),
                "val/ce_first_frame_wrong_caption": F.cross_entropy(wrong_logits.float().flatten(0, 1), first)}

    @staticmethod
    def _routing_logs(stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Flatten MoE stats to scalars: `moe/layer{i}/{stat}` and per-expert `moe/layer{i}/load/e{j}`."""
        logs = {}
        for key, value in stats.items():
            if value.ndim == 0:
                logs[f"moe/{key}"] = value
            else:
                logs.update({f"moe/{key}/e{j:02d}": v for j, v in enumerate(value)})
        return logs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Next-token cross-entropy (+ MoE auxiliary losses) on a batch of codes, text dropped at random (+ the
        byte loss of the understanding rows)."""
        return self._step(batch, "train", self.global_step)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Conditional next-token cross-entropy on validation codes (+ the byte loss of understanding rows, the
        same rows at every validation)."""
        self._step(batch, "val", batch_idx)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Once per optimiser step: the MoE balancing biases (from the loads of all micro-batches, all processes) and
        the Mixture-of-Depths thresholds."""
        self.model.update_router_biases()
