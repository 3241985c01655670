"""The presets behind ``worldmodel train --preset NAME``: their files, their output folders, warm starts, and the
commands each stage runs (stages replaced by a recorder, so nothing trains here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from worldmodel.training import preset as presets
from worldmodel.training.preset import PRESETS, SmallPreset, TinyPreset, configs_dir, train_preset, warm_start


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_names_its_own_configs_and_folders(name):
    preset = PRESETS[name]()
    assert preset.name == name
    configs = configs_dir()
    tokenizer = yaml.safe_load((configs / preset.tokenizer_config).read_text())["model"]["init_args"]
    world = yaml.safe_load((configs / preset.worldmodel_config).read_text())
    model = world["model"]["init_args"]["model_config"]
    # the world model's vocabulary and code grid are the tokenizer's
    assert model["codebook_size"] == math.prod(tokenizer["fsq_levels"])
    assert model["latent_height"] * tokenizer["spatial_compression"] == 64
    assert world["data"]["init_args"]["train_dir"] == str(preset.tokens_dir / "train")
    assert world["model"]["init_args"]["export_dir"] == str(preset.worldmodel_dir / "worldmodel")
    assert str(preset.tokenizer_dir) in (configs / preset.tokenizer_config).read_text()
    others = [PRESETS[n]() for n in PRESETS if n != name]
    for other in others:  # no two presets write to the same folders
        assert {preset.tokenizer_dir, preset.tokens_dir, preset.worldmodel_dir}.isdisjoint(
            {other.tokenizer_dir, other.tokens_dir, other.worldmodel_dir})


def test_small_world_model_writes_text_long_enough_for_every_description():
    world = yaml.safe_load((configs_dir() / SmallPreset().worldmodel_config).read_text())
    model = world["model"]["init_args"]["model_config"]
    assert model["text_output"] is True and model["max_answer_len"] >= 320
    assert world["data"]["init_args"]["understanding"] is True


def test_warm_start_only_for_presets_that_ask_and_only_from_an_export(tmp_path):
    export = tmp_path / "tokenizer"
    assert warm_start(SmallPreset(), export) == []  # nothing exported yet: from scratch
    export.mkdir()
    (export / "config.json").write_text("{}")
    assert warm_start(SmallPreset(), export) == [f"--model.init_args.pretrained={export}"]
    assert warm_start(TinyPreset(), export) == []  # the shipped recipe always starts from scratch


def test_small_world_model_stage_runs_its_yaml_warm_started_and_time_capped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(presets, "run_stage", lambda name, args: calls.append((name, args)) or 1.0)
    export = Path("outputs/worldmodel-small/worldmodel")
    export.mkdir(parents=True)
    (export / "config.json").write_text("{}")
    seconds = train_preset(preset=SmallPreset(), stages=("worldmodel",), max_minutes=30)
    assert seconds == {"worldmodel": 1.0}
    (name, args), = calls
    assert name == "worldmodel"
    assert args[:3] == ["train", "--config", str(configs_dir() / "worldmodel-small.yaml")]
    assert f"--model.init_args.pretrained={export}" in args
    assert "--trainer.max_time=00:00:30:00" in args and "--trainer.max_steps=2400" in args
    assert (tmp_path / "outputs" / "preset-seconds-small.json").is_file()


def test_unknown_stage_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="unknown preset stages"):
        train_preset(preset=SmallPreset(), stages=("tokeniser",))
