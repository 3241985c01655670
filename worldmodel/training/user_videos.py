"""``worldmodel train --preset NAME --videos DIR``: a tokenizer and a world model trained on a folder of your videos.

Stages (each resumable: a rerun of the same command skips finished stages and resumes an interrupted training
stage from its last checkpoint):

1. ``clips``: cut clips of the model's length and size from every video (:func:`extract_clips`), skipping
   unusable files with the reason;
2. ``tokenizer``: train the preset's tokenizer YAML on those clips;
3. ``tokens``: encode the clips into token caches (the last clips held out for validation);
4. ``worldmodel``: train the preset's world-model YAML on the caches (unconditional where clips have no caption);
5. ``export``: the pipeline folder at ``--out``, built beside it and swapped in atomically.

Work files (clips, caches, checkpoints, logs and the two stage YAMLs, which also run alone with ``worldmodel train
--config``) live in ``OUT.work`` beside the pipeline folder.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from worldmodel.io import check_writable_dir, write_json_atomic, write_text_atomic
from worldmodel.training.preset import (
    PRESETS,
    VIDEO_STAGES,
    StageError,
    TinyPreset,
    configs_dir,
    export_pipeline,
    max_time,
    run_stage,
    split_cache,
)

DONE = "stages.json"


def clip_shape(configs: Path, preset: TinyPreset | None = None) -> tuple[int, int]:
    """``(frames, size)`` of the clips the preset's (default tiny) world model is trained on, from its two YAMLs."""
    import yaml

    preset = preset or TinyPreset()
    tokenizer = yaml.safe_load((configs / preset.tokenizer_config).read_text(encoding="utf-8"))["model"]["init_args"]
    world = yaml.safe_load((configs / preset.worldmodel_config).read_text(encoding="utf-8"))
    model = world["model"]["init_args"]["model_config"]
    frames = 1 + tokenizer["temporal_compression"] * (model["latent_frames"] - 1)
    return frames, model["latent_height"] * tokenizer["spatial_compression"]


def _stage_config(source: Path, target: Path, root: Path, data: dict[str, Any], trainer_values: dict[str, Any],
                  model_values: dict[str, Any]) -> Path:
    """Write the preset YAML ``source`` with its outputs under ``root``, ``data`` as its data section and the
    preset's trainer and model values."""
    import yaml

    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    trainer = config["trainer"]
    trainer.update(trainer_values)
    trainer["default_root_dir"] = str(root)
    trainer["logger"]["init_args"]["save_dir"] = str(root)
    for callback in trainer.get("callbacks", []):
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback["init_args"]["dirpath"] = str(root / "checkpoints")
    config["model"]["init_args"].update(model_values, export_dir=str(root / "export"))
    config["data"] = data
    header = f"# written by `worldmodel train --preset` from {source.name}; runs alone with worldmodel train --config\n"
    write_text_atomic(target, header + yaml.safe_dump(config, sort_keys=False))
    return target


def _train_stage(name: str, config: Path, root: Path, flags: list[str]) -> float:
    """Train one stage from its YAML, resuming from ``root/checkpoints/last.ckpt`` when an earlier run left one."""
    last = root / "checkpoints" / "last.ckpt"
    resume = ["--ckpt_path", str(last)] if last.is_file() else []
    return run_stage(name, ["train", "--config", str(config), *flags, *resume])


def _summary(out: Path, work: Path, clips: dict[str, Any], seconds: dict[str, float]) -> str:
    """The closing report: what was trained on what, where it is, and which files were skipped and why."""
    lines = [f"trained a tokenizer and a world model on {clips['clips']} clips from {clips['videos_used']} videos "
             f"in {clips['videos']} ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})",
             f"pipeline folder: {out}  (worldmodel generate \"...\" --checkpoint {out} -o video.mp4; "
             f"worldmodel rollout CLIP --context-frames 5 --checkpoint {out} -o rollout.mp4)",
             f"work files (clips, token caches, checkpoints, logs, stage YAMLs): {work}"]
    skipped = clips["skipped"]
    if skipped:
        lines.append(f"skipped {len(skipped)} files:")
        lines += [f"  {s['file']}: {s['reason']}" for s in skipped]
    else:
        lines.append("no files were skipped")
    return "\n".join(lines)


def train_on_videos(videos: str | os.PathLike, out: str | os.PathLike | None = None, preset_name: str = "tiny",
                    captions: str | os.PathLike | None = None, max_minutes: float | None = None,
                    accelerator: str = "cpu", workers: int = 2, stages: tuple[str, ...] = VIDEO_STAGES,
                    trainer_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train the preset ``preset_name`` on the videos under ``videos``; ``out`` ends as a pipeline folder.

    ``out`` defaults to ``outputs/pipeline-NAME-FOLDER``. ``max_minutes`` caps each training stage;
    ``trainer_args`` (``--trainer.*`` flags) go to both training stages. Returns the record written to
    ``out/training.json`` (with the skipped files and the seconds of each stage) and prints a summary.
    """
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; expected one of {', '.join(sorted(PRESETS))}")
    unknown = sorted(set(stages) - set(VIDEO_STAGES))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; with --videos the stages are {', '.join(VIDEO_STAGES)}")
    if max_minutes is not None and not (isinstance(max_minutes, int | float) and 0 < max_minutes < math.inf):
        raise ValueError(f"--max-minutes must be a positive number, got {max_minutes!r}")
    videos = Path(videos)
    if not videos.is_dir():
        raise FileNotFoundError(f"--videos {videos}: no such folder of videos")
    if captions is not None and not Path(captions).is_file():
        raise FileNotFoundError(f"--captions {captions}: no such file (expected JSON lines with video, caption)")
    out = Path(out) if out is not None else Path("outputs") / f"pipeline-{preset_name}-{videos.resolve().name}"
    check_writable_dir(out, "--out")
    preset = PRESETS[preset_name]()
    configs = configs_dir()
    frames, size = clip_shape(configs, preset)
    work = out.with_name(f"{out.name}.work")
    done_path = work / DONE
    done: dict[str, float] = json.loads(done_path.read_text(encoding="utf-8")) if done_path.is_file() else {}
    flags = [f"--trainer.accelerator={accelerator}", *(["--trainer.precision=bf16-mixed"] if accelerator == "gpu"
                                                         else []), *trainer_args]

    def finish(stage: str, seconds: float) -> None:
        done[stage] = seconds
        write_json_atomic(done_path, done)

    from worldmodel.datasets.clips import extract_clips

    start = time.perf_counter()
    clips = extract_clips(videos, work / "clips", frames=frames, size=size, captions=captions)
    if "clips" not in done:
        finish("clips", time.perf_counter() - start)
    if clips["clips"] < 2:
        raise ValueError(f"--videos {videos}: only {clips['clips']} clip of {frames} frames could be cut; training "
                         "needs at least 2 (one is held out for validation)")
    tokenizer_dir = work / "tokenizer" / "export"
    if "tokenizer" in stages and "tokenizer" not in done:
        data = {"class_path": "worldmodel.datasets.datamodules.PhysicsDataModule",
                "init_args": {"root": str(work / "clips"), "batch_size": min(preset.tokenizer_batch_size,
                                                                             clips["clips"] - 1),
                              "num_workers": workers, "frames": frames, "size": size, "val_fraction": 0.05,
                              "seed": 0}}
        limit = max_time(max_minutes) if max_minutes is not None else preset.tokenizer_max_time
        config = _stage_config(configs / preset.tokenizer_config, work / "configs" / "tokenizer.yaml",
                               work / "tokenizer", data, {"max_steps": preset.tokenizer_steps, "max_time": limit},
                               {"norm": preset.tokenizer_norm, "lr": preset.tokenizer_lr})
        finish("tokenizer", _train_stage("tokenizer", config, work / "tokenizer", flags))
    holdout = max(1, clips["clips"] // 20)
    if "tokens" in stages and "tokens" not in done:
        from worldmodel.pretrained import load_pretrained
        from worldmodel.tokenizers import VideoTokenizer
        from worldmodel.tokenizers.cache import encode_dataset

        start = time.perf_counter()
        tokenizer = load_pretrained(VideoTokenizer, tokenizer_dir)
        encode_dataset(tokenizer, work / "clips", work / "tokens" / "all", batch_size=16)
        split_cache(work / "tokens" / "all", work / "tokens" / "train", work / "tokens" / "val", holdout)
        finish("tokens", time.perf_counter() - start)
    world_dir = work / "worldmodel" / "export"
    if "worldmodel" in stages and "worldmodel" not in done:
        data = {"class_path": "worldmodel.datasets.tokens.TokenDataModule",
                "init_args": {"train_dir": str(work / "tokens" / "train"), "val_dir": str(work / "tokens" / "val"),
                              "batch_size": min(preset.worldmodel_batch_size, clips["clips"] - holdout),
                              "num_workers": 0, "seed": 0}}
        limit = max_time(max_minutes) if max_minutes is not None else preset.worldmodel_max_time
        config = _stage_config(configs / preset.worldmodel_config, work / "configs" / "worldmodel.yaml",
                               work / "worldmodel", data, {"max_steps": preset.worldmodel_steps, "max_time": limit},
                               {"understanding_share": 0.0})  # user clips have no annotations to describe
        finish("worldmodel", _train_stage("worldmodel", config, work / "worldmodel", flags))
    record = {"preset": preset_name, "preset_values": asdict(preset), "videos": str(videos.resolve()),
              "captions": clips["captions"], "clips": clips["clips"], "frames": frames, "size": size,
              "fps": clips["fps"], "skipped": clips["skipped"], "max_minutes": max_minutes,
              "accelerator": accelerator, "trainer_args": list(trainer_args), "seconds": dict(done)}
    if "export" in stages:
        for stage in ("tokenizer", "worldmodel"):
            if stage not in done:
                raise StageError(f"cannot export {out}: the {stage} stage has not finished (run it first)")
        export_pipeline(out, {"tokenizer": tokenizer_dir, "world_model": world_dir}, record)
        print(_summary(out, work, clips, done), flush=True)
    return record
