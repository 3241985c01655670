"""Committed stage weights of the next default's recipe (stages/): they load offline and do what their record says."""

import json
from pathlib import Path

import pytest
import torch

from worldmodel.datasets import simulate
from worldmodel.evaluation.permanence import permanence, summarize
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.video import to_uint8

STAGES = Path(__file__).resolve().parents[1] / "stages"


@pytest.mark.parametrize("recipe", ["small"])
def test_stage_tokenizer_keeps_the_balls_of_held_out_episodes(recipe):
    folder = STAGES / recipe
    record = json.loads((folder / "training.json").read_text())
    assert record["seconds"] > 0 and record["steps"] > 0 and record["command"].startswith("worldmodel train")
    tokenizer = VideoTokenizer.from_pretrained(folder / "tokenizer").eval()
    assert tokenizer.codebook_size == 4096
    results = []
    for seed, scenario in enumerate(("uniform", "parabola", "bounce")):
        episode = simulate(scenario, "val", seed)
        with torch.no_grad():
            codes = tokenizer.encode(torch.from_numpy(episode.frames)[None])
            recon = to_uint8(tokenizer.decode(codes))[0].numpy()
        assert codes.shape == (1, 5, 8, 8) and int(codes.max()) < 4096
        results.append(permanence(recon, episode.annotation))
    assert summarize(results)["frame_permanence"] >= 0.95
