"""Committed stage weights of the next default's recipe (stages/): they load offline and do what their record says."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.datasets import simulate
from worldmodel.evaluation.permanence import permanence, summarize
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.video import to_uint8

STAGES = Path(__file__).resolve().parents[1] / "stages"


def stage_record(path: Path) -> dict:
    """A stage's training record, checked for what every record must say: its command, steps and seconds."""
    record = json.loads(path.read_text())
    assert record["seconds"] > 0 and record["steps"] > 0 and record["command"].startswith("worldmodel train")
    return record


@pytest.mark.parametrize("recipe", ["small"])
def test_stage_tokenizer_keeps_the_balls_of_held_out_episodes(recipe):
    folder = STAGES / recipe
    stage_record(folder / "training.json")
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


@pytest.mark.parametrize("recipe", ["small"])
def test_stage_world_model_predicts_held_out_codes_and_writes_text(recipe):
    from worldmodel.model import WorldModel
    from worldmodel.tokenizers.text import ByteTokenizer

    folder = STAGES / recipe
    record = stage_record(folder / "world_model_training.json")
    tokenizer = VideoTokenizer.from_pretrained(folder / "tokenizer").eval()
    model = WorldModel.from_pretrained(folder / "world_model").eval()
    assert model.config.codebook_size == tokenizer.codebook_size and model.config.text_output
    episodes = [simulate(s, "val", 10 + i) for i, s in enumerate(("uniform", "parabola", "collision"))]
    with torch.no_grad():
        codes = tokenizer.encode(torch.from_numpy(np.stack([e.frames for e in episodes])))  # (3, 5, 8, 8)
        targets = codes.reshape(3, -1)
        ids = torch.cat([torch.full_like(targets[:, :1], model.bos_token_id), targets[:, :-1]], dim=1)
        text = model.encode_text(*ByteTokenizer(model.config.max_text_len).encode([e.captions[0] for e in episodes]))
        ce = torch.nn.functional.cross_entropy(model(ids, text).logits.flatten(0, 1), targets.flatten())
    # an untrained model scores ln(4096) = 8.3 nats; the committed weights must be near their recorded validation
    assert float(ce) <= record["val_ce"] + 0.5


@pytest.mark.parametrize("recipe", ["small"])
def test_stage_folder_is_a_pipeline_that_describes_and_rolls_out(recipe):
    from worldmodel.pipelines import PhysicsRolloutPipeline, VideoToTextPipeline

    folder = STAGES / recipe
    episode = simulate("parabola", "val", 3)
    text = VideoToTextPipeline.from_checkpoint(folder).describe(episode.frames).text
    assert text and text.isprintable()
    rollout = PhysicsRolloutPipeline.from_checkpoint(folder)(episode.frames[:5], num_frames=9).frames[0]
    assert rollout.shape == (9, 64, 64, 3)
