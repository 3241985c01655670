"""Digit-factorised code embedding and head: FSQ numbering, zero start, one digit vector per digit value."""

import pytest
import torch

from worldmodel.model import WorldModel
from worldmodel.model.code_digits import CodeDigits, digit_one_hot
from worldmodel.pretrained import load_pretrained
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
