"""A checkpoint whose weights do not cover its components' tensors is refused, never filled with noise."""

import json

import pytest

from worldmodel.pipelines import CheckpointError, TextToVideoPipeline


def test_weights_that_miss_tensors_are_refused(tmp_path, tiny_parts):
    tokenizer, world, _ = tiny_parts
    TextToVideoPipeline(tokenizer=tokenizer, world_model=world).save_pretrained(tmp_path)
    assert TextToVideoPipeline.from_checkpoint(tmp_path).world_model.config.codebook_size == world.config.codebook_size
    config = json.loads((tmp_path / "tokenizer" / "config.json").read_text())
    config["norm"] = "rms" if config.get("norm", "group") == "group" else "group"  # other layers, other tensors
    (tmp_path / "tokenizer" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="tokenizer: the weights lack .* tensors"):
        TextToVideoPipeline.from_checkpoint(tmp_path)
