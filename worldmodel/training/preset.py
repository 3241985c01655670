"""``worldmodel train --preset tiny``: reproduce the shipped default from scratch.

Stages, each an ordinary project command so that any one can be re-run alone:

1. train the tokenizer (``configs/tokenizer-tiny.yaml``, simulated episodes on the fly);
2. simulate the ``train`` and ``val`` datasets (``worldmodel data generate``);
3. encode both to token caches with the trained tokenizer;
4. train the world model (``configs/worldmodel-tiny.yaml``) and the draft model
   (``configs/worldmodel-draft.yaml``) on those caches;
5. assemble the pipeline folder (tokenizer + world model + draft; ``save_pretrained``) at ``--export``.

Paths inside the configs are relative to the working directory (``outputs/...``); run from the
repository root. ``--accelerator gpu`` changes only trainer flags (plus bf16-mixed precision).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from worldmodel.io import write_json_atomic


@dataclass
class TinyPreset:
    """Step counts and data sizes of the shipped tiny default (the values it was trained with)."""

    tokenizer_steps: int = 12000
    tokenizer_batch_size: int = 16
    train_episodes: int = 8192
    val_episodes: int = 128
    worldmodel_steps: int = 12000
    draft_steps: int = 12000
    worldmodel_batch_size: int = 32


def _run(args: list[str]) -> float:
    """Run one ``worldmodel`` command in a subprocess; return its wall time in seconds."""
    print("+ worldmodel " + " ".join(args), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worldmodel.cli", *args], check=True)
    return time.perf_counter() - start


def _trainer_flags(accelerator: str, workers: int) -> list[str]:
    if accelerator == "cpu":
        return ["--trainer.accelerator=cpu"]
    return [f"--trainer.accelerator={accelerator}", "--trainer.precision=bf16-mixed",
            f"--data.init_args.num_workers={workers}"]


STAGES = ("tokenizer", "data", "worldmodel", "draft", "export")


def train_preset(export: str | Path, accelerator: str = "cpu", workers: int = 2, configs: str | Path = "configs",
                 preset: TinyPreset | None = None, stages: tuple[str, ...] = STAGES,
                 trainer_args: tuple[str, ...] = ()) -> dict[str, float]:
    """Run the chosen ``stages`` of the tiny preset (default all, in order); ``export`` writes the pipeline.

    ``trainer_args`` (e.g. ``--trainer.max_time=00:00:30:00``) go to every training stage. Returns the
    wall seconds of each stage; the export stage writes them to ``export/training.json`` together
    with those of earlier runs found in ``outputs/preset-seconds.json``.
    """
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown preset stages {unknown}; expected a subset of {list(STAGES)}")
    from worldmodel.model import WorldModel
    from worldmodel.pipelines import TextToVideoPipeline
    from worldmodel.tokenizers import VideoTokenizer
    from worldmodel.tokenizers.cache import encode_dataset

    preset = preset or TinyPreset()
    configs = Path(configs)
    flags = [*_trainer_flags(accelerator, workers), *trainer_args]
    seconds_path = Path("outputs/preset-seconds.json")
    seconds: dict[str, float] = {}
    if "tokenizer" in stages:
        seconds["tokenizer"] = _run(["train", "--config", str(configs / "tokenizer-tiny.yaml"), *flags,
                                     f"--trainer.max_steps={preset.tokenizer_steps}",
                                     f"--data.init_args.batch_size={preset.tokenizer_batch_size}"])
    if "data" in stages:
        start = time.perf_counter()
        _run(["data", "generate", "--out", "outputs/data/train", "--episodes", str(preset.train_episodes),
              "--split", "train", "--seed", "0", "--workers", str(workers)])
        _run(["data", "generate", "--out", "outputs/data/val", "--episodes", str(preset.val_episodes),
              "--split", "val", "--seed", "1", "--workers", str(workers)])
        tokenizer = VideoTokenizer.from_pretrained("outputs/tokenizer-tiny/tokenizer")
        if accelerator == "gpu":
            tokenizer = tokenizer.to("cuda")
        for split in ("train", "val"):
            encode_dataset(tokenizer, f"outputs/data/{split}", f"outputs/tokens/{split}", batch_size=64)
        seconds["data"] = time.perf_counter() - start
    for name, steps in (("worldmodel", preset.worldmodel_steps), ("draft", preset.draft_steps)):
        if name not in stages:
            continue
        config = configs / ("worldmodel-tiny.yaml" if name == "worldmodel" else "worldmodel-draft.yaml")
        seconds[name] = _run(["train", "--config", str(config), *flags, f"--trainer.max_steps={steps}",
                              f"--data.init_args.batch_size={preset.worldmodel_batch_size}"])
    if seconds_path.is_file():  # merge with stages run earlier (or alongside, in another process)
        seconds = {**json.loads(seconds_path.read_text()), **seconds}
    write_json_atomic(seconds_path, seconds)
    if "export" not in stages:
        return seconds
    pipeline = TextToVideoPipeline(
        tokenizer=VideoTokenizer.from_pretrained("outputs/tokenizer-tiny/tokenizer"),
        world_model=WorldModel.from_pretrained("outputs/worldmodel-tiny/worldmodel"),
        draft_model=WorldModel.from_pretrained("outputs/worldmodel-draft/worldmodel"),
    )
    export = Path(export)
    pipeline.save_pretrained(export)
    record = {"preset": asdict(preset), "accelerator": accelerator, "trainer_args": list(trainer_args),
              "seconds": seconds}
    write_json_atomic(export / "training.json", record)
    print(json.dumps(record, indent=2))
    return seconds
