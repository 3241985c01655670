"""ByteTokenizer: UTF-8 bytes in, padded ids and mask out; clear errors over the limit."""

import pytest
import torch

from worldmodel.tokenizers.text import ByteTokenizer


def test_encodes_utf8_bytes_with_padding_and_mask():
    ids, mask = ByteTokenizer(16).encode(["ab", "é", ""])
    assert ids.dtype == torch.long and mask.dtype == torch.bool and ids.shape == (3, 2)
    assert ids[0].tolist() == [97, 98]
    assert ids[1].tolist() == list("é".encode()) and mask[1].tolist() == [True, True]
    assert ids[2].tolist() == [256, 256] and not mask[2].any()


def test_round_trip_any_text():
    tok = ByteTokenizer(64)
    texts = ["A red ball bounces.", "Zwei Bälle stoßen zusammen 🎱", "  "]
    assert tok.decode(*tok.encode(texts)) == texts


def test_all_empty_batch_is_unconditional():
    ids, mask = ByteTokenizer(8).encode(["", ""])
    assert ids.shape == (2, 1) and not mask.any()


def test_over_the_limit_raises_naming_length_and_limit():
    tok = ByteTokenizer(4)
    assert tok.encode(["abcd"])[0].shape == (1, 4)
    with pytest.raises(ValueError, match=r"Prompt 1 is 6 bytes long .* limit of 4 bytes"):
        tok.encode(["ok", "ééé"])


@pytest.mark.parametrize("bad", ["not a list", [1, 2], [None]])
def test_bad_input_raises(bad):
    with pytest.raises(ValueError, match="string"):
        ByteTokenizer(8).encode(bad)


def test_bad_limit_raises():
    with pytest.raises(ValueError, match="max_length"):
        ByteTokenizer(0)
