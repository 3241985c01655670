"""WorldModel with text output (docs/sequence-layout.md): vocabulary, text positions, cached decoding, causality."""

import pytest
import torch
from test_world_model import TINY, text_for

from worldmodel.model import WorldModel
from worldmodel.model.rope import grid_positions
from worldmodel.model.text_output import EOS_CLASS, IGNORE, sequence_coords, understanding_batch

TEXT = dict(TINY, text_output=True, max_answer_len=12, max_text_len=64)


def make(**overrides) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(**{"bridge_gate_init": 0.7, **TEXT, **overrides}).eval()


def codes_of(model: WorldModel, frames: int, seed: int) -> torch.Tensor:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, c.codebook_size, (frames * c.latent_height * c.latent_width,), generator=g)


def test_off_is_todays_model_and_on_adds_the_vocabulary_and_byte_head():
    torch.manual_seed(0)
    off = WorldModel(**TINY)
    on = make()
    assert "text_head.weight" not in off.state_dict() and off.embed.num_embeddings == TINY["codebook_size"] + 1
    assert off.max_seq_len == 3 * 4 * 4 + 1
    assert on.embed.num_embeddings == TINY["codebook_size"] + 259 and on.text_head.out_features == 257
    assert on.max_seq_len == off.max_seq_len + 12 + 1
    assert set(on.state_dict()) - set(off.state_dict()) == {"text_head.weight"}
    ids = torch.full((1, 5), off.bos_token_id)
    out = off.eval()(ids)
    assert out.text_logits is None and set(out.keys()) == {"logits", "aux_loss", "stats", "hidden_states"}
    assert out.hidden_states.shape == (1, 5, TINY["d_model"])


def test_text_positions_continue_the_time_axis_after_the_last_latent_frame():
    h = w = 4
    coords = sequence_coords(0, 40, h, w, torch.tensor([33, 17]))  # TXT after 2 and after 1 latent frames
    grid = grid_positions(0, 40, h, w)
    assert torch.equal(coords[0, :33], grid[:33]) and torch.equal(coords[1, :17], grid[:17])
    assert coords[0, 33].tolist() == [3, 0, 0] and coords[0, 35].tolist() == [5, 0, 0]  # t_last = 2
    assert coords[1, 17].tolist() == [2, 0, 0] and coords[1, 20].tolist() == [5, 0, 0]  # t_last = 1


def test_understanding_batch_targets_are_the_answer_bytes_then_eos():
    model = make()
    ids, start, targets = understanding_batch([torch.arange(16), torch.arange(32)], [b"yes", b"no"], model.vocab)
    assert start.tolist() == [17, 33] and ids.shape == (2, 36)
    assert ids[0, 17] == model.vocab.txt and ids[0, 18] == model.vocab.byte_id(ord("y"))
    assert targets[0, 17:21].tolist() == [ord("y"), ord("e"), ord("s"), EOS_CLASS]
    assert (targets[0, :17] == IGNORE).all() and (targets[0, 21:] == IGNORE).all()
    assert targets[1, 33:36].tolist() == [ord("n"), ord("o"), EOS_CLASS]


def test_kv_cached_text_decoding_equals_the_full_forward():
    model = make()
    rows = [codes_of(model, 3, 1), codes_of(model, 1, 2)]  # a description row and a forecast row
    ids, start, _ = understanding_batch(rows, [b"balls: red", b"bottom left"], model.vocab)
    text = text_for(model, ["describe the video", "where will the red ball be at frame 16?"])
    with torch.no_grad():
        full = model(ids, text, text_start=start).text_logits
        cache = model.new_cache(2)
        chunks = [model(ids[:, :10], text, cache, router_stats=False, text_start=start).text_logits]
        for i in range(10, ids.shape[1]):
            chunks.append(model(ids[:, i : i + 1], text, cache, router_stats=False, text_start=start).text_logits)
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-4)


def test_a_row_reads_the_same_alone_and_padded_in_a_batch():
    model = make()
    rows, answers = [codes_of(model, 2, 3), codes_of(model, 3, 4)], [b"yes", b"three"]
    ids, start, _ = understanding_batch(rows, answers, model.vocab)
    alone_ids, alone_start, _ = understanding_batch(rows[:1], answers[:1], model.vocab)
    with torch.no_grad():
        batched = model(ids, text_start=start).text_logits[:1, : alone_ids.shape[1]]
        alone = model(alone_ids, text_start=alone_start).text_logits
    assert torch.allclose(batched, alone, atol=1e-5)


def test_forecast_text_cannot_see_the_video_after_the_cut():
    """Two clips that agree on their first K latent frames and differ after: the forecast rows (cut after K frames,
    then text) read exactly alike, while the full-clip rows do not; within a row no text position sees a later
    token."""
    model = make()
    first = codes_of(model, 3, 5)
    second = first.clone()
    second[16:] = codes_of(model, 2, 6)  # same first latent frame (16 codes), different later frames
    answer = [b"top left"] * 2
    cut, cut_start, _ = understanding_batch([first[:16], second[:16]], answer, model.vocab)
    whole, whole_start, _ = understanding_batch([first, second], answer, model.vocab)
    with torch.no_grad():
        forecast = model(cut, text_start=cut_start).text_logits[:, 16:]
        described = model(whole, text_start=whole_start).text_logits[:, 48:]
        assert torch.equal(forecast[0], forecast[1])
        assert not torch.allclose(described[0], described[1])
        changed = cut.clone()
        changed[:, 20] = model.vocab.byte_id(ord("x"))  # a later answer byte
        after = model(changed, text_start=cut_start).text_logits
    assert torch.equal(after[:, :20], model(cut, text_start=cut_start).text_logits[:, :20])


def test_clear_errors_for_misplaced_text_tokens():
    model = make()
    ids, start, _ = understanding_batch([codes_of(model, 1, 7)], [b"no"], model.vocab)
    with pytest.raises(ValueError, match="need text_start"):
        model(ids)
    with pytest.raises(ValueError, match="must fill each row from text_start on"):
        model(ids, text_start=start + 1)
    with pytest.raises(ValueError, match="text_start is for world models with text_output"):
        make(text_output=False, max_answer_len=0)(ids[:, :5], text_start=start)
    with pytest.raises(ValueError, match="max_answer_len >= 1"):
        make(max_answer_len=0)
    with pytest.raises(ValueError, match="cannot be combined with mod_layers"):
        make(mod_layers=[1])


def test_answer_pauses_put_more_txt_before_the_answer_and_move_its_targets():
    model = make(answer_pauses=3)
    assert model.max_seq_len == make().max_seq_len + 3
    ids, start, targets = understanding_batch([torch.arange(16), torch.arange(32)], [b"yes", b"no"], model.vocab,
                                              pauses=3)
    assert start.tolist() == [17, 33] and ids.shape == (2, 39)
    assert (ids[0, 17:21] == model.vocab.txt).all() and ids[0, 21] == model.vocab.byte_id(ord("y"))
    assert targets[0, 20:24].tolist() == [ord("y"), ord("e"), ord("s"), EOS_CLASS]
    assert (targets[0, :20] == IGNORE).all() and (targets[0, 24:] == IGNORE).all()
    assert targets[1, 36:39].tolist() == [ord("n"), ord("o"), EOS_CLASS]
    text = text_for(model, ["is there gravity?", "is there gravity?"])
    with torch.no_grad():  # the longest answer fits, and the cached decoding still equals the full forward
        full = model(ids, text, text_start=start).text_logits
        cache = model.new_cache(2)
        chunks = [model(ids[:, :18], text, cache, router_stats=False, text_start=start).text_logits]
        chunks += [model(ids[:, i : i + 1], text, cache, router_stats=False, text_start=start).text_logits
                   for i in range(18, ids.shape[1])]
    assert torch.allclose(torch.cat(chunks, dim=1), full, atol=1e-4)
    with pytest.raises(ValueError, match="answer_pauses must be >= 0"):
        make(answer_pauses=-1)
    with pytest.raises(ValueError, match="only a model with text_output"):
        make(text_output=False, max_answer_len=0, answer_pauses=2)


def test_code_positions_start_as_todays_model_and_then_tell_rows_apart():
    """Zero at init (a warm start predicts as before); once set, a code's row and column reach its state, in the
    cached forward exactly as in the full one, and BOS and text positions get none."""
    plain, placed = make(), make(code_positions=True)
    placed.load_state_dict(plain.state_dict(), strict=False)
    ids, start, _ = understanding_batch([codes_of(plain, 2, 3)], [b"top left"], plain.vocab)
    text = text_for(plain, ["where will the red ball be at frame 16?"])
    with torch.no_grad():
        assert torch.allclose(placed(ids, text, text_start=start).text_logits,
                              plain(ids, text, text_start=start).text_logits, atol=1e-6)
        placed.row_embed.normal_()
        placed.col_embed.normal_()
        same = torch.full((1, 1 + 2 * 16), 5)  # one code everywhere: rows differ only by where they are
        same[0, 0] = plain.bos_token_id
        h, before = placed(same).hidden_states[0], plain(same).hidden_states[0]  # (33, D) each
        assert not torch.allclose(h[1:], before[1:], atol=1e-3) and torch.allclose(h[0], before[0], atol=1e-6)
        assert torch.allclose(plain(same[:, :1]).hidden_states, placed(same[:, :1]).hidden_states, atol=1e-6)
        full = placed(ids, text, text_start=start).text_logits
        cache = placed.new_cache(1)
        parts = [placed(ids[:, :20], text, cache, router_stats=False, text_start=start).text_logits,
                 placed(ids[:, 20:], text, cache, router_stats=False, text_start=start).text_logits]
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-4)
    assert set(placed.state_dict()) - set(plain.state_dict()) == {"row_embed", "col_embed"}
