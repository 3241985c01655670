"""``worldmodel train --preset NAME`` (``tiny``: the shipped default; ``small``: its redesign): from scratch.

Stages, each an ordinary project command so that any one can be re-run alone:

1. train the tokenizer (``configs/tokenizer-NAME.yaml``, simulated episodes on the fly);
2. simulate the ``train`` dataset (``worldmodel data generate``; kept when it is already there);
3. encode it to a token cache with the trained tokenizer and hold out its last episodes for validation;
4. train the world model (``configs/worldmodel-NAME.yaml``) and, when ``draft_steps > 0``, the draft
   model (``configs/worldmodel-draft.yaml``) on those caches;
5. assemble the pipeline folder (tokenizer + world model + draft; ``save_pretrained``) at ``--out``
   (default ``outputs/pipeline-NAME``; the packaged default is replaced only when named): it is built beside the
   target and swapped in by rename, with the wall seconds of each stage in its ``training.json``.

The configs are package data (``worldmodel/configs``, the repository's ``configs/``), so this runs from a wheel
install too; paths inside them are relative to the working directory (``outputs/...``). ``--accelerator gpu``
changes only trainer flags (plus bf16-mixed precision). ``worldmodel train --preset tiny --videos DIR`` trains
on a folder of videos instead (:mod:`worldmodel.training.user_videos`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from worldmodel.io import replace_dir, write_json_atomic


@dataclass
class TinyPreset:
    """Step counts, time limits, data sizes and files of the shipped tiny default (the values it was trained with).

    Each training stage stops at its step count or its time limit (``D:HH:MM:SS``), whichever comes first; the
    learning-rate schedule always spans the step count. On the project's 2-core box the tokenizer stopped on
    time (4170 of 5000 steps in 60 minutes, the tokenizer's budget at the time). Every path below is relative to
    the working directory; the YAMLs are package data (:func:`configs_dir`).
    """

    name: str = "tiny"
    tokenizer_config: str = "tokenizer-tiny.yaml"
    worldmodel_config: str = "worldmodel-tiny.yaml"
    tokenizer_steps: int = 5000
    tokenizer_max_time: str = "00:01:00:00"
    tokenizer_batch_size: int = 8
    tokenizer_norm: str = "group"
    tokenizer_lr: float = 5e-4
    train_episodes: int = 8192
    holdout_episodes: int = 256  # the last train episodes, kept out of world-model training for validation
    worldmodel_steps: int = 5600
    worldmodel_max_time: str = "00:01:35:00"
    draft_steps: int = 1500  # 0: no draft model (speculative decoding can still use the free frame-copy draft)
    draft_max_time: str = "00:00:15:00"
    worldmodel_batch_size: int = 16
    warm_start: bool = False  # a training stage run again starts from the weights its earlier run exported

    @property
    def tokenizer_dir(self) -> Path:
        """The tokenizer stage's output folder (its export is ``tokenizer_dir / "tokenizer"``)."""
        return Path(f"outputs/tokenizer-{self.name}")

    @property
    def tokens_dir(self) -> Path:
        """Token caches of the train set: ``all``, then ``train`` and ``val`` split from it."""
        return Path("outputs/tokens" if self.name == "tiny" else f"outputs/tokens-{self.name}")

    @property
    def worldmodel_dir(self) -> Path:
        """The world-model stage's output folder (its export is ``worldmodel_dir / "worldmodel"``)."""
        return Path(f"outputs/worldmodel-{self.name}")


@dataclass
class SmallPreset(TinyPreset):
    """The object-permanence redesign (``configs/tokenizer-small.yaml``, ``configs/worldmodel-small.yaml``): an
    FSQ-4096 tokenizer trained on foreground-weighted 32x32 crops, and a world model with a byte head that also
    describes and answers. Every training stage fits one 150-minute run on the 2-core box; a stage that has an
    export from an earlier run warm-starts from it (the recipe's stages and their records: ``stages/small``)."""

    name: str = "small"
    tokenizer_config: str = "tokenizer-small.yaml"
    worldmodel_config: str = "worldmodel-small.yaml"
    tokenizer_steps: int = 7300
    tokenizer_max_time: str = "00:02:30:00"
    worldmodel_steps: int = 2400
    worldmodel_max_time: str = "00:02:30:00"
    draft_steps: int = 0
    warm_start: bool = True


def split_cache(src: Path, train_dir: Path, val_dir: Path, holdout: int) -> None:
    """Split a token cache into ``train_dir`` (all but the last ``holdout`` entries) and ``val_dir``."""
    from safetensors.torch import load_file, save_file

    from worldmodel.io import atomic_path, write_text_atomic
    from worldmodel.tokenizers.cache import CODES, INDEX, META

    codes = load_file(str(src / CODES))["codes"]
    index = (src / INDEX).read_text().splitlines()
    meta = json.loads((src / META).read_text())
    if not 0 < holdout < len(index):
        raise ValueError(f"holdout must be between 1 and {len(index) - 1} episodes, got {holdout}")
    cut = len(index) - holdout
    for out, part in ((train_dir, slice(0, cut)), (val_dir, slice(cut, None))):
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / CODES) as tmp:
            save_file({"codes": codes[part].contiguous()}, str(tmp))
        write_text_atomic(out / INDEX, "\n".join(index[part]) + "\n")
        write_json_atomic(out / META, {**meta, "episodes": len(index[part]), "split_from": str(src)})


class StageError(ValueError):
    """A preset stage (a ``worldmodel`` sub-process) failed; its own output says why."""


def configs_dir() -> Path:
    """The packaged LightningCLI YAMLs (``worldmodel/configs``; in a checkout, the repository's ``configs/``)."""
    path = Path(str(resources.files("worldmodel") / "configs"))
    if not (path / "tokenizer-tiny.yaml").is_file():
        raise FileNotFoundError(f"{path}: the packaged configs are missing (a broken install: reinstall worldmodel)")
    return path


def max_time(minutes: float) -> str:
    """``minutes`` as a Lightning ``max_time`` string ``DD:HH:MM:SS`` (at least one second)."""
    seconds = max(1, round(minutes * 60))
    days, rest = divmod(seconds, 86400)
    return f"{days:02d}:{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"


def run_stage(name: str, args: list[str]) -> float:
    """Run one ``worldmodel`` command in a subprocess; return its wall time in seconds.

    Raises :class:`StageError` (one sentence) when it fails; Ctrl-C stops it and reaches the caller.
    """
    print("+ worldmodel " + " ".join(args), flush=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "worldmodel.cli", *args], check=False)
    if result.returncode == 130:
        raise KeyboardInterrupt
    if result.returncode != 0:
        raise StageError(f"the {name} stage failed with exit code {result.returncode} (its output is above)")
    return time.perf_counter() - start


def warm_start(preset: TinyPreset, export: Path) -> list[str]:
    """``--model.init_args.pretrained=EXPORT`` when the preset warm-starts and an earlier run of the stage left an
    export there, else nothing: such a stage run again continues from its last weights (fresh optimiser and
    schedule)."""
    if not (preset.warm_start and (export / "config.json").is_file()):
        return []
    return [f"--model.init_args.pretrained={export}"]


def _trainer_flags(accelerator: str, workers: int) -> list[str]:
    if accelerator == "cpu":
        return ["--trainer.accelerator=cpu"]
    return [f"--trainer.accelerator={accelerator}", "--trainer.precision=bf16-mixed",
            f"--data.init_args.num_workers={workers}"]


def export_pipeline(out: str | Path, components: dict[str, Path | None], record: dict[str, Any]) -> Path:
    """Assemble a pipeline folder from ``save_pretrained`` component folders at ``out``, atomically.

    ``components`` maps ``tokenizer``, ``world_model`` and optionally ``draft_model`` to their folders (loaded
    offline). The folder is built beside ``out`` with ``record`` as its ``training.json``, then swapped in by
    :func:`worldmodel.io.replace_dir`: readers see the old pipeline or the new one, never a half-written one.
    """
    from worldmodel.model import WorldModel
    from worldmodel.pipelines import TextToVideoPipeline
    from worldmodel.pretrained import load_pretrained
    from worldmodel.tokenizers import VideoTokenizer

    out = Path(out)
    draft = components.get("draft_model")
    pipeline = TextToVideoPipeline(tokenizer=load_pretrained(VideoTokenizer, components["tokenizer"]),
                                   world_model=load_pretrained(WorldModel, components["world_model"]),
                                   draft_model=load_pretrained(WorldModel, draft) if draft else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipeline.save_pretrained(tmp)
    write_json_atomic(tmp / "training.json", record)
    return replace_dir(tmp, out)


PRESETS = {"tiny": TinyPreset, "small": SmallPreset}
STAGES = ("tokenizer", "data", "worldmodel", "draft", "export")
VIDEO_STAGES = ("clips", "tokenizer", "tokens", "worldmodel", "export")


def train_preset(export: str | Path = "outputs/pipeline-tiny", accelerator: str = "cpu", workers: int = 2,
                 configs: str | Path | None = None, preset: TinyPreset | None = None,
                 stages: tuple[str, ...] = STAGES, trainer_args: tuple[str, ...] = (),
                 max_minutes: float | None = None) -> dict[str, float]:
    """Run the chosen ``stages`` of a preset (default tiny; all stages, in order); ``export`` writes the pipeline.

    ``trainer_args`` (e.g. ``--trainer.max_time=00:00:30:00``) go to every training stage; ``max_minutes``
    caps each training stage's wall time. Returns the wall seconds of each stage; the export stage writes
    them to ``export/training.json`` together with those of earlier runs found in
    ``outputs/preset-seconds-NAME.json``.
    """
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown preset stages {unknown}; expected a subset of {list(STAGES)}")
    from worldmodel.pretrained import load_pretrained
    from worldmodel.tokenizers import VideoTokenizer
    from worldmodel.tokenizers.cache import encode_dataset

    preset = preset or TinyPreset()
    configs = Path(configs) if configs is not None else configs_dir()
    flags = [*_trainer_flags(accelerator, workers), *trainer_args]
    seconds_path = Path(f"outputs/preset-seconds-{preset.name}.json")
    seconds: dict[str, float] = {}

    def time_limit(limit: str) -> str:
        return max_time(max_minutes) if max_minutes is not None else limit

    if "tokenizer" in stages:
        seconds["tokenizer"] = run_stage("tokenizer", [
            "train", "--config", str(configs / preset.tokenizer_config),
            *warm_start(preset, preset.tokenizer_dir / "tokenizer"),
            f"--trainer.max_time={time_limit(preset.tokenizer_max_time)}", *flags,
            f"--trainer.max_steps={preset.tokenizer_steps}",
            f"--data.init_args.batch_size={preset.tokenizer_batch_size}",
            f"--model.init_args.norm={preset.tokenizer_norm}", f"--model.init_args.lr={preset.tokenizer_lr}"])
    if "data" in stages:
        start = time.perf_counter()
        manifest = Path("outputs/data/train/manifest.jsonl")  # the same episodes (seed 0) for every preset
        if not manifest.is_file() or len(manifest.read_text().splitlines()) != preset.train_episodes:
            episodes = str(preset.train_episodes)
            run_stage("data", ["data", "generate", "--out", "outputs/data/train", "--episodes", episodes,
                               "--split", "train", "--seed", "0", "--workers", str(workers)])
        tokenizer = load_pretrained(VideoTokenizer, preset.tokenizer_dir / "tokenizer")
        if accelerator == "gpu":
            tokenizer = tokenizer.to("cuda")
        tokens = preset.tokens_dir
        encode_dataset(tokenizer, "outputs/data/train", tokens / "all", batch_size=64)
        split_cache(tokens / "all", tokens / "train", tokens / "val", preset.holdout_episodes)
        seconds["data"] = time.perf_counter() - start
    for name, steps, limit in (("worldmodel", preset.worldmodel_steps, preset.worldmodel_max_time),
                               ("draft", preset.draft_steps, preset.draft_max_time)):
        if name not in stages or steps == 0:
            continue
        config = configs / (preset.worldmodel_config if name == "worldmodel" else "worldmodel-draft.yaml")
        start = warm_start(preset, preset.worldmodel_dir / "worldmodel") if name == "worldmodel" else []
        seconds[name] = run_stage(name, ["train", "--config", str(config), *start,
                                         f"--trainer.max_time={time_limit(limit)}",
                                         *flags, f"--trainer.max_steps={steps}",
                                         f"--data.init_args.batch_size={preset.worldmodel_batch_size}",
                                         "--data.init_args.tokenizer=null", "--data.init_args.train_videos=null",
                                         "--data.init_args.val_videos=null"])
    if seconds_path.is_file():  # merge with stages run earlier (or alongside, in another process)
        seconds = {**json.loads(seconds_path.read_text()), **seconds}
    write_json_atomic(seconds_path, seconds)
    if "export" not in stages:
        return seconds
    record = {"preset": asdict(preset), "accelerator": accelerator, "trainer_args": list(trainer_args),
              "seconds": seconds}
    components = {"tokenizer": preset.tokenizer_dir / "tokenizer",
                  "world_model": preset.worldmodel_dir / "worldmodel",
                  "draft_model": Path("outputs/worldmodel-draft/worldmodel") if preset.draft_steps else None}
    export_pipeline(export, components, record)
    print(json.dumps(record, indent=2))
    return seconds
