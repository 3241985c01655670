"""Joint training data and loss: targets from the annotations, seeded draws, the text loss falls in a few steps."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from conftest import TINY_TEXT_WORLD

from worldmodel.datasets.tokens import TokenDataModule, collate_tokens
from worldmodel.datasets.understanding_data import (
    DESCRIBE_PROMPT,
    UnderstandingTokenDataset,
    episode_targets,
)
from worldmodel.training.worldmodel_module import WorldModelModule
from worldmodel.understanding import CANNOT_ANSWER, answer, describe, parse_question


def test_targets_are_the_annotations_answers_and_draws_are_seeded(tiny_cache, tiny_dataset):
    data = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, description_share=0.3, seed=4)
    again = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, description_share=0.3, seed=4)
    draws = [data[i % len(data)]["understanding"] for i in range(200)]
    assert draws == [again[i % len(again)]["understanding"] for i in range(200)]
    assert draws != [UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=5)[i % len(data)]
                     ["understanding"] for i in range(200)]
    annotations = {e["id"]: json.loads((tiny_dataset / "annotations" / f"{e['id']}.json").read_text())
                   for e in data.index}
    kinds = set()
    for i, draw in enumerate(draws):
        annotation = annotations[data.index[i % len(data)]["id"]]
        if draw["prompt"] == DESCRIBE_PROMPT:
            assert draw["answer"] == describe(annotation) and draw["latent_frames"] == 3
            kinds.add("description")
            continue
        question = parse_question(draw["prompt"])
        kinds.add(question.type)
        assert draw["latent_frames"] == (1 if question.predictive else 3)
        assert draw["answer"] == answer(question, annotation, 1 if question.predictive else 0)  # 1 latent = 1 frame
    assert {"description", "count", "position", "will_collide", "gravity"} <= kinds
    assert any(d["answer"] == CANNOT_ANSWER for d in draws) or len(draws) < 100


def test_episode_targets_list_every_template_instance(tiny_dataset):
    annotation = json.loads(next((tiny_dataset / "annotations").glob("*.json")).read_text())
    targets = episode_targets(annotation, context_frames=5)
    assert targets.description == describe(annotation) and targets.last_frame == 8
    for kind, text, reply, predictive in targets.questions:
        question = parse_question(text)
        assert question.type == kind and question.predictive == predictive
        assert reply == answer(question, annotation, 5 if predictive else 0)


def test_understanding_rows_are_seeded_and_leave_generation_rows(tiny_cache):
    module = WorldModelModule(model_config=TINY_TEXT_WORLD, understanding_share=0.25, seed=1)
    data = UnderstandingTokenDataset(tiny_cache)
    batch = collate_tokens([data[i] for i in range(8)])
    rows = module._understanding_rows(batch, 3)
    assert len(rows) == 2 and rows == module._understanding_rows(batch, 3)
    assert {tuple(module._understanding_rows(batch, s)) for s in range(20)} != {tuple(rows)}
    with pytest.raises(ValueError, match="carry no understanding examples"):
        module._understanding_rows({"codes": batch["codes"]}, 0)
    with pytest.raises(ValueError, match="raise the batch size"):
        module._understanding_rows(collate_tokens([data[0]]), 0)


@pytest.mark.parametrize("pauses", [0, 2])
def test_a_tiny_model_trained_a_few_steps_lowers_the_text_loss(tiny_cache, tmp_path, pauses):
    data = TokenDataModule(str(tiny_cache), val_dir=str(tiny_cache), batch_size=4, understanding=True,
                           context_latent_frames=1, description_share=0.5)
    data.setup()
    fixed = collate_tokens([data.val_set[i] for i in range(8)])
    L.seed_everything(0)
    module = WorldModelModule(model_config={**TINY_TEXT_WORLD, "answer_pauses": pauses}, lr=1e-2, warmup_steps=1,
                              understanding_share=0.5)
    rows = list(range(8))
    with torch.no_grad():
        before = module._understanding_loss(fixed, rows)[0].item()
    trainer = L.Trainer(max_steps=25, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        default_root_dir=tmp_path)
    trainer.fit(module, data)
    with torch.no_grad():
        after = module._understanding_loss(fixed, rows)[0].item()
    assert "train/text_ce" in trainer.callback_metrics and "val/text_ce" in trainer.callback_metrics
    assert after < 0.6 * before, (before, after)


def test_read_share_shows_predictive_questions_the_whole_clip_and_keeps_the_draws(tiny_cache):
    """read_share only changes how many latent frames a predictive question shows: prompts and answers are the
    draws of read_share 0, which are the draws of earlier versions (no extra random draw)."""
    plain = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=2)
    zero = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=2, read_share=0.0)
    read = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=2, read_share=1.0)
    half = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=2, read_share=0.5)
    draws = [[d[i % len(d)]["understanding"] for i in range(300)] for d in (plain, zero, read, half)]
    assert draws[0] == draws[1]
    predictive_frames = []
    for base, full, mixed in zip(draws[1], draws[2], draws[3], strict=True):
        assert (base["prompt"], base["answer"]) == (full["prompt"], full["answer"]) == (mixed["prompt"],
                                                                                        mixed["answer"])
        assert full["latent_frames"] == 3
        question = parse_question(base["prompt"])
        if question is not None and question.predictive:
            assert base["latent_frames"] == 1
            predictive_frames.append(mixed["latent_frames"])
    assert {1, 3} == set(predictive_frames)  # read share 0.5: both modes
    with pytest.raises(ValueError, match="read_share must be a probability"):
        UnderstandingTokenDataset(tiny_cache, read_share=1.5)


def test_ball_cells_are_the_latent_cells_a_disc_touches():
    from worldmodel.datasets.understanding_data import ball_cells

    states = [[[3.0, 3.0, 0, 0]]] + [[[3.0 + 8 * k, 3.0, 0, 0]] for k in range(1, 9)]  # 9 frames, moving right
    annotation = {"height": 32, "width": 32, "objects": [{"color": "red", "radius": 2.0}], "states": states}
    cells = ball_cells(annotation, (3, 4, 4, 4))["red"]  # (3, 4, 4): latent 1 = frames 1-4, latent 2 = frames 5-8
    assert cells.shape == (3, 4, 4)
    assert cells[0].nonzero() == (np.array([0]), np.array([0]))  # frame 0: centre (3, 3), radius 2: cell (0, 0)
    assert set(zip(*cells[1].nonzero(), strict=True)) == {(0, 1), (0, 2), (0, 3)}  # x = 11, 19, 27, 35 (frames 1-4)
    assert not cells[2].any()  # frames 5-8: x >= 43, outside the 32-px frame


def test_examples_that_name_balls_carry_their_cells(tiny_cache):
    data = UnderstandingTokenDataset(tiny_cache, context_latent_frames=1, seed=3, read_share=0.3)
    seen = set()
    for i in range(300):
        item = data[i % len(data)]
        draw, targets = item["understanding"], data.targets[item["id"]]
        question = parse_question(draw["prompt"])
        named = [a for a in (question.args if question else ()) if isinstance(a, str)]
        if not named:
            assert draw["cells"] is None
            continue
        assert len(draw["cells"]) == draw["latent_frames"] * 16
        wanted = np.zeros((3, 4, 4), dtype=bool)
        for colour in named:
            wanted |= targets.cells.get(colour, np.zeros((3, 4, 4), dtype=bool))
        assert draw["cells"] == tuple(wanted[: draw["latent_frames"]].reshape(-1).astype(int))
        seen.add(("present" if any(draw["cells"]) else "absent", draw["latent_frames"]))
    assert ("present", 3) in seen and ("present", 1) in seen


def test_the_binding_probe_trains_on_named_ball_rows_only(tiny_cache):
    from worldmodel.training.worldmodel_module import binding_probe_loss

    probe = torch.nn.Linear(4, 1)
    hidden = torch.zeros(2, 6, 4)  # two rows of [BOS] 3 codes [TXT] b
    with torch.no_grad():
        probe.weight.zero_()
        probe.bias.fill_(2.0)
    loss = binding_probe_loss(probe, hidden, [(1, 0, 1), None])
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.full((3,), 2.0), torch.tensor([1.0, 0, 1]))
    assert torch.allclose(loss, want)
    assert binding_probe_loss(probe, hidden, [None, None]).item() == 0.0
    data = TokenDataModule(str(tiny_cache), batch_size=8, understanding=True, context_latent_frames=1,
                           description_share=0.0)
    data.setup()
    batch = collate_tokens([data.train_set[i] for i in range(8)])
    module = WorldModelModule(model_config=TINY_TEXT_WORLD, understanding_share=0.5, binding_probe_weight=1.0)
    text_ce, _, extra = module._understanding_loss(batch, list(range(8)))
    binding = extra["binding_probe"]
    binding.backward()
    assert binding.item() > 0 and module.binding_probe.weight.grad.any()
    assert module.model.embed.weight.grad.any()  # the probe's loss reaches the trunk
    assert "binding_probe" not in dict(module.model.named_modules())  # training-only, not exported
    with pytest.raises(ValueError, match="binding_probe_weight needs a world model with text_output"):
        WorldModelModule(model_config={**TINY_TEXT_WORLD, "text_output": False, "max_answer_len": 0},
                         binding_probe_weight=1.0)


def test_grounding_pulls_the_answer_attention_onto_the_named_ball(tiny_cache):
    """The loss is -log of head 0's attention mass on the named cells at each answer position; it reaches the last
    block's queries, and a few steps on it alone raise that mass."""
    from worldmodel.model.text_output import IGNORE
    from worldmodel.training.worldmodel_module import grounding_loss

    q, k = torch.zeros(1, 2, 5, 3), torch.zeros(1, 2, 5, 3)  # [BOS] c c c [TXT], flat attention
    targets = torch.tensor([[IGNORE, IGNORE, IGNORE, IGNORE, 7]])
    assert torch.allclose(grounding_loss(q, k, 1.0, targets, [(1, 0, 0)]), torch.log(torch.tensor(5.0)))
    k[0, 0, 1, 0], q[0, 0, 4, 0] = 10.0, 1.0  # head 0 looks at the first code
    assert grounding_loss(q, k, 1.0, targets, [(1, 0, 0)]).item() < 1e-3
    assert grounding_loss(q, k, 1.0, targets, [(0, 1, 0)]).item() > 9
    assert grounding_loss(q, k, 1.0, targets, [None]).item() == 0.0
    data = TokenDataModule(str(tiny_cache), batch_size=8, understanding=True, context_latent_frames=1,
                           description_share=0.0)
    data.setup()
    batch = collate_tokens([data.train_set[i] for i in range(8)])
    torch.manual_seed(0)
    module = WorldModelModule(model_config=TINY_TEXT_WORLD, understanding_share=0.5, grounding_weight=1.0)
    optimiser = torch.optim.Adam(module.model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        optimiser.zero_grad()
        grounding = module._understanding_loss(batch, list(range(8)))[2]["grounding"]
        grounding.backward()
        first = grounding.item() if first is None else first
        assert module.model.blocks[-1].attn.wq.weight.grad.any() and module.grounding.q is None  # kept q/k dropped
        optimiser.step()
    assert grounding.item() < 0.7 * first
    module.log = lambda *args, **kwargs: None  # outside a Trainer
    module.log_dict = lambda *args, **kwargs: None
    assert module._step(batch, "train", 0).requires_grad  # the weighted loss joins the step's
    with pytest.raises(ValueError, match="grounding_weight needs a world model with text_output"):
        WorldModelModule(model_config={**TINY_TEXT_WORLD, "text_output": False, "max_answer_len": 0},
                         grounding_weight=1.0)
