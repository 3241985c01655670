"""The tokenizer's ``norm`` option: both layers build, round-trip through save/load, bad names are refused."""

import pytest
import torch

from worldmodel.tokenizers import VideoTokenizer


@pytest.mark.parametrize("norm", ["group", "rms"])
def test_norm_option_round_trips(tmp_path, norm):
    torch.manual_seed(0)
    tok = VideoTokenizer(channels=(8, 16, 16), norm=norm).eval()
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    tok.save_pretrained(tmp_path)
    again = VideoTokenizer.from_pretrained(tmp_path).eval()
    assert again.config.norm == norm
    assert torch.equal(tok.encode(video), again.encode(video))


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm must be"):
        VideoTokenizer(channels=(8, 16, 16), norm="batch")
