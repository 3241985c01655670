"""scripts/toy_caption_reading.py: the colour swap, and a two-step run that writes its three held-out figures."""

import json

import pytest
import torch
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def toy(load_script):
    return load_script("toy_caption_reading")


def test_colour_swap_changes_every_colour_word_and_nothing_else(toy):
    assert toy.swap_colour("a large red ball bounces") == "a large purple ball bounces"
    assert toy.swap_colour("two balls (green, white) collide") == "two balls (orange, yellow) collide"
    assert toy.swap_colour("a reddish ball") == "a reddish ball"  # whole words only
    assert toy.swap_colour(toy.swap_colour("a cyan ball")) == "a cyan ball"


def test_two_steps_write_own_swapped_and_empty_figures(toy, tmp_path):
    cache = tmp_path / "tokens"
    cache.mkdir()
    codes = torch.randint(0, 16, (12, 2, 2, 2), generator=torch.Generator().manual_seed(0), dtype=torch.int32)
    save_file({"codes": codes}, str(cache / "codes.safetensors"))
    colours = ["red", "blue", "green"]
    lines = [json.dumps({"id": f"e{i}", "captions": [f"a {colours[i % 3]} ball"]}) for i in range(12)]
    (cache / "index.jsonl").write_text("\n".join(lines) + "\n")
    (cache / "meta.json").write_text(json.dumps({"codebook_size": 16, "latent_shape": [2, 2, 2]}))
    out = tmp_path / "toy.jsonl"
    args = ["--cache", str(cache), "--episodes", "12", "--held-out", "4", "--steps", "2", "--batch-size", "4",
            "--code-levels", "4,4", "--text-center", "--out", str(out)]
    assert toy.main(args) == 0
    record = json.loads(out.read_text())
    assert record["held_out_episodes"] == 4 and record["code_levels"] == [4, 4] and record["text_center"]
    assert record["own"] != record["colour_swapped"] and record["empty"] > 0
    with pytest.raises(ValueError, match="fewer than --episodes 20"):
        toy.main(["--cache", str(cache), "--episodes", "20", "--out", str(out)])
