"""Code terms added to the embedding and head: digit factorisation (FSQ numbering, zero start, one digit vector per
digit value) and the decoder's code features (a drawn blob's centroid, the table's shape and determinism, a zero
start that changes nothing, the table saved with the weights)."""

import pytest
import torch

from worldmodel.model import WorldModel
from worldmodel.model.code_digits import CodeDigits, digit_one_hot
from worldmodel.model.code_features import PER_VIEW, _view_features, decoder_code_features, feature_count
from worldmodel.pretrained import load_pretrained
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.tokenizers.quantizers import FSQ
from worldmodel.tokenizers.text import ByteTokenizer

TINY = dict(
    codebook_size=60, latent_frames=2, latent_height=2, latent_width=2, max_text_len=32, d_model=32, n_layers=2,
    n_heads=2, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, dense_hidden=32,
    moe_experts=4, moe_expert_hidden=16, moe_top_k=2, moe_groups=2, moe_topk_groups=1,
    text_d_model=16, text_layers=1, text_heads=2,
)  # fmt: skip


def test_digits_follow_the_fsq_numbering():
    levels = [3, 5, 4]
    one_hot = digit_one_hot(levels)
    assert one_hot.shape == (60, 12) and torch.equal(one_hot.sum(1), torch.full((60,), 3.0))
    fsq = FSQ(levels)
    digits = (torch.arange(60)[:, None] // fsq.basis) % fsq.levels  # the quantizer's own digits
    offsets = torch.tensor([0, 3, 8])
    for code in (0, 7, 33, 59):
        assert one_hot[code].nonzero().flatten().tolist() == (digits[code] + offsets).tolist()


def test_zero_tables_change_nothing_and_trained_ones_share_by_digit():
    torch.manual_seed(0)
    plain = WorldModel(**TINY).eval()
    digits = WorldModel(**TINY, code_levels=[3, 5, 4]).eval()
    digits.load_state_dict(plain.state_dict(), strict=False)
    ids = torch.randint(0, 60, (2, 9))
    ids[:, 0] = plain.bos_token_id
    text = plain.encode_text(*ByteTokenizer(32).encode(["a red ball", ""]))
    with torch.no_grad():
        assert torch.equal(plain(ids, text).logits, digits(ids, text).logits)
        table = CodeDigits([3, 5, 4], 4)
        table.head.copy_(torch.randn(12, 4))
        h = torch.randn(1, 1, 4)
        logits = table.code_logits(h)[0, 0]  # code 0 = digits (0, 0, 0), code 1 = (1, 0, 0), code 3 = (0, 1, 0)
        assert torch.allclose(logits[0], h[0, 0] @ (table.head[0] + table.head[3] + table.head[8]), atol=1e-5)
        assert torch.allclose(logits[1] - logits[0], h[0, 0] @ (table.head[1] - table.head[0]), atol=1e-5)
        assert torch.allclose(logits[3] - logits[0], h[0, 0] @ (table.head[4] - table.head[3]), atol=1e-5)
        table.embed.copy_(torch.randn(12, 4))
        rows = table.embed_codes(torch.tensor([[0, 59, 60]]))[0]  # 60 = BOS: no digits
        assert torch.allclose(rows[0], table.embed[0] + table.embed[3] + table.embed[8], atol=1e-6)
        assert not rows[2].any()


def test_levels_must_multiply_to_the_codebook():
    with pytest.raises(ValueError, match="product is codebook_size 60"):
        WorldModel(**TINY, code_levels=[4, 4, 4])


def test_a_saved_digit_model_loads_through_the_weights_check(tmp_path):
    with torch.device("meta"):  # how check_weights_fit builds its shape-only model
        shapes = WorldModel(**TINY, code_levels=[3, 5, 4])
    assert torch.equal(shapes.code_digits.table, digit_one_hot([3, 5, 4]))
    model = WorldModel(**TINY, code_levels=[3, 5, 4])
    model.save_pretrained(tmp_path / "wm")
    loaded = load_pretrained(WorldModel, tmp_path / "wm")
    assert torch.equal(loaded.code_digits.embed, model.code_digits.embed)


def test_a_blob_right_of_and_above_the_patch_centre_has_that_centroid():
    patch = 8
    diff = torch.zeros(1, 3 * patch, 3 * patch)
    diff[0, 8:10, 14:16] = 2.0  # rows 8-9 (above the middle, 12), columns 14-15 (right of it)
    diff[0, 0, 0] = 0.5  # a faint change far off, below half the peak: ignored by the centroid
    rgb = torch.zeros(1, 3, 3 * patch, 3 * patch)
    rgb[0, 0] = 1.0  # red everywhere
    mass, cx, cy, cx2, cy2, r, g, b = _view_features(diff, rgb, patch)[0].tolist()
    assert abs(cx - (15.0 - 12) / patch) < 1e-5 and abs(cy - (9.0 - 12) / patch) < 1e-5
    assert abs(cx2 - cx**2) < 1e-6 and abs(cy2 - cy**2) < 1e-6
    assert abs(mass - 8.5 / patch**2) < 1e-6 and (r, g, b) == (1.0, 0.0, 0.0)


def test_the_table_has_one_row_per_code_and_is_deterministic():
    torch.manual_seed(0)
    tokenizer = VideoTokenizer(channels=(8, 8, 8), blocks=1, patch_size=4, fsq_levels=(3, 2, 2)).eval()
    table = decoder_code_features(tokenizer, (20, 20, 24), batch_size=5)
    assert table.shape == (12, feature_count(4, 3)) == (12, PER_VIEW * 5 + 3)
    assert torch.isfinite(table).all()
    assert torch.equal(table, decoder_code_features(tokenizer, (20, 20, 24), batch_size=12))
    raw = decoder_code_features(tokenizer, (20, 20, 24), standardise=False)
    assert torch.allclose(raw[:, -3:], tokenizer.quantizer.indices_to_latents(torch.arange(12).view(12, 1, 1, 1))
                          .flatten(1))  # the quantizer latent of each code closes every row


def test_zero_projections_change_nothing_and_the_table_is_saved(tmp_path):
    torch.manual_seed(0)
    plain = WorldModel(**TINY).eval()
    featured = WorldModel(**TINY, code_feature_dim=6).eval()
    featured.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        featured.code_features.table.copy_(torch.randn(60, 6))
    ids = torch.randint(0, 60, (2, 9))
    ids[:, 0] = plain.bos_token_id
    text = plain.encode_text(*ByteTokenizer(32).encode(["a red ball", ""]))
    with torch.no_grad():
        assert torch.equal(plain(ids, text).logits, featured(ids, text).logits)
        featured.code_features.head.copy_(torch.randn(6, 32))
        assert not torch.equal(plain(ids, text).logits, featured(ids, text).logits)
    featured.save_pretrained(tmp_path / "wm")
    loaded = load_pretrained(WorldModel, tmp_path / "wm")
    assert torch.equal(loaded.code_features.table, featured.code_features.table)
    assert torch.equal(loaded.code_features.head, featured.code_features.head)
