"""Depth growth (worldmodel/model/growth.py): a deeper model that predicts as the original, then trains."""

import pytest
import torch
from test_text_output import codes_of, make
from test_world_model import text_for

from worldmodel.model import WorldModel
from worldmodel.model.growth import grow_depth
from worldmodel.model.text_output import understanding_batch


def batch(model: WorldModel):
    ids, start, targets = understanding_batch([codes_of(model, 3, 1), codes_of(model, 2, 2)], [b"yes", b"top left"],
                                              model.vocab)
    return ids, text_for(model, ["will they collide?", "where will the red ball be?"]), start, targets


def test_grown_model_predicts_as_the_original_with_blocks_in_place():
    model = make()
    grown = grow_depth(model).eval()
    c = grown.config
    assert (c.n_layers, c.n_dense_layers, c.bridge_layers) == (6, 2 * model.config.n_dense_layers, [0, 1, 4, 5])
    assert [b.bridge is not None for b in grown.blocks] == [True, True, False, False, True, True]
    assert all(grown.blocks[j].attn.wo.weight.abs().sum() == 0 for j in (1, 3, 5))
    assert torch.equal(grown.blocks[2].attn.wq.weight, model.blocks[1].attn.wq.weight)
    assert torch.equal(grown.blocks[3].attn.wq.weight, model.blocks[1].attn.wq.weight)
    ids, text, start, _ = batch(model)
    with torch.no_grad():
        a, b = model(ids, text, text_start=start), grown(ids, text, text_start=start)
    assert torch.allclose(a.logits, b.logits, atol=1e-5) and torch.allclose(a.text_logits, b.text_logits, atol=1e-5)
    partial = grow_depth(model, after=[2])
    assert partial.config.n_layers == 4 and partial.config.bridge_layers == [0, 2, 3]


def test_copies_train_and_the_grown_model_round_trips(tmp_path):
    grown = grow_depth(make(), after=[0, 1]).train()
    ids, text, start, targets = batch(grown)
    out = grown(ids, text, text_start=start)
    loss = torch.nn.functional.cross_entropy(out.text_logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
    loss.backward()
    assert grown.blocks[1].attn.wo.weight.grad.abs().sum() > 0  # the zeroed copy gets a gradient from the first step
    assert grown.blocks[3].ffn.experts.w2.grad.abs().sum() > 0
    grown.save_pretrained(tmp_path)
    loaded = WorldModel.from_pretrained(str(tmp_path), local_files_only=True).eval()
    with torch.no_grad():
        assert torch.equal(loaded(ids, text, text_start=start).text_logits,
                           grown.eval()(ids, text, text_start=start).text_logits)


def test_bad_block_numbers_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="non-empty subset of 0..2"):
        grow_depth(make(), after=[3])
    with pytest.raises(ValueError, match="non-empty subset"):
        grow_depth(make(), after=[])
