"""``worldmodel train --preset tiny``: reproduce the shipped default from scratch.

Stages, each an ordinary project command so that any one can be re-run alone:

1. train the tokenizer (``configs/tokenizer-tiny.yaml``, simulated episodes on the fly);
2. simulate the ``train`` dataset (``worldmodel data generate``);
3. encode it to a token cache with the trained tokenizer and hold out its last episodes for validation;
4. train the world model (``configs/worldmodel-tiny.yaml``) and, when ``draft_steps > 0``, the draft
   model (``configs/worldmodel-draft.yaml``) on those caches;
5. assemble the pipeline folder (tokenizer + world model + draft; ``save_pretrained``) at ``--out``
   (default ``outputs/pipeline-tiny``; the packaged default is replaced only when named): it is built beside the
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
    """Step counts, time limits and data sizes of the shipped tiny default (the values it was trained with).

    Each training stage stops at its step count or its time limit (``D:HH:MM:SS``), whichever comes first; the
    learning-rate schedule always spans the step count. On the project's 2-core box the tokenizer stopped on
    time (4170 of 5000 steps in 60 minutes, the tokenizer's budget at the time).
    """

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


PRESETS = {"tiny": TinyPreset}
STAGES = ("tokenizer", "data", "worldmodel", "draft", "export")
VIDEO_STAGES = ("clips", "tokenizer", "tokens", "worldmodel", "export")


def train_preset(export: str | Path = "outputs/pipeline-tiny", accelerator: str = "cpu", workers: int = 2,
                 configs: str | Path | None = None, preset: TinyPreset | None = None,
                 stages: tuple[str, ...] = STAGES, trainer_args: tuple[str, ...] = (),
                 max_minutes: float | None = None) -> dict[str, float]:
    """Run the chosen ``stages`` of the tiny preset (default all, in order); ``export`` writes the pipeline.

    ``trainer_args`` (e.g. ``--trainer.max_time=00:00:30:00``) go to every training stage; ``max_minutes``
    caps each training stage's wall time. Returns the wall seconds of each stage; the export stage writes
    them to ``export/training.json`` together with those of earlier runs found in
    ``outputs/preset-seconds.json``.
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
    seconds_path = Path("outputs/preset-seconds.json")
    seconds: dict[str, float] = {}

    def time_limit(limit: str) -> str:
        return max_time(max_minutes) if max_minutes is not None else limit

    if "tokenizer" in stages:
        seconds["tokenizer"] = run_stage("tokenizer", [
            "train", "--config", str(configs / "tokenizer-tiny.yaml"),
            f"--trainer.max_time={time_limit(preset.tokenizer_max_time)}", *flags,
            f"--trainer.max_steps={preset.tokenizer_steps}",
            f"--data.init_args.batch_size={preset.tokenizer_batch_size}",
            f"--model.init_args.norm={preset.tokenizer_norm}", f"--model.init_args.lr={preset.tokenizer_lr}"])
    if "data" in stages:
        start = time.perf_counter()
        run_stage("data", ["data", "generate", "--out", "outputs/data/train", "--episodes", str(preset.train_episodes),
                           "--split", "train", "--seed", "0", "--workers", str(workers)])
        tokenizer = load_pretrained(VideoTokenizer, "outputs/tokenizer-tiny/tokenizer")
        if accelerator == "gpu":
            tokenizer = tokenizer.to("cuda")
        encode_dataset(tokenizer, "outputs/data/train", "outputs/tokens/all", batch_size=64)
        split_cache(Path("outputs/tokens/all"), Path("outputs/tokens/train"), Path("outputs/tokens/val"),
                    preset.holdout_episodes)
        seconds["data"] = time.perf_counter() - start
    for name, steps, limit in (("worldmodel", preset.worldmodel_steps, preset.worldmodel_max_time),
                               ("draft", preset.draft_steps, preset.draft_max_time)):
        if name not in stages or steps == 0:
            continue
        config = configs / ("worldmodel-tiny.yaml" if name == "worldmodel" else "worldmodel-draft.yaml")
        seconds[name] = run_stage(name, ["train", "--config", str(config), f"--trainer.max_time={time_limit(limit)}",
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
    components = {"tokenizer": Path("outputs/tokenizer-tiny/tokenizer"),
                  "world_model": Path("outputs/worldmodel-tiny/worldmodel"),
                  "draft_model": Path("outputs/worldmodel-draft/worldmodel") if preset.draft_steps else None}
    export_pipeline(export, components, record)
    print(json.dumps(record, indent=2))
    return seconds
