"""Episode storage: ``generate_dataset`` writes a folder of lossless videos, annotations and a manifest.

Layout of a dataset folder ``DIR``::

    DIR/dataset.json               generation settings (seed, split, scenarios, frames, size, fps)
    DIR/manifest.jsonl             one line per episode: id, video, annotation, caption, scenario,
                                   split, frames, height, width, fps, seed
    DIR/videos/<id>.mkv            FFV1, bit-exact RGB
    DIR/annotations/<id>.json      the annotation dict of :func:`worldmodel.datasets.simulate`

Episode ``i`` is ``simulate(scenarios[i % len(scenarios)], split, episode_seed(seed, i))``, so a
dataset is a pure function of its settings. Every file is written atomically and the annotation is
written after the video, so an episode exists exactly when its annotation does. Re-running the same
command after an interruption skips finished episodes and writes the rest; the manifest is rebuilt
atomically from the annotation files at the end. Two generators must not write into one folder at once.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from worldmodel.datasets.scenarios import SCENARIOS, check_scenario_split
from worldmodel.datasets.simulator import check_fps, check_frames_size, simulate
from worldmodel.io import write_json_atomic, write_text_atomic

MANIFEST = "manifest.jsonl"
SETTINGS = "dataset.json"
VIDEO_DIR = "videos"
ANNOTATION_DIR = "annotations"
SEED_STRIDE = 2**32  # episode seeds of different --seed values never meet below 2**32 episodes


def episode_seed(seed: int, index: int) -> int:
    """Seed of episode ``index`` of a dataset generated with ``seed``."""
    return seed * SEED_STRIDE + index


def episode_id(split: str, index: int, scenario: str) -> str:
    """File-name-safe id of episode ``index``: ``<split>_<index:06d>_<scenario>``."""
    return f"{split}_{index:06d}_{scenario}"


def parse_scenarios(scenarios: str | Sequence[str] | None) -> list[str]:
    """Scenario names from ``None`` (all), a comma-separated string, or a list; validated."""
    if scenarios is None:
        return list(SCENARIOS)
    names = [s.strip() for s in scenarios.split(",")] if isinstance(scenarios, str) else list(scenarios)
    names = [s for s in names if s]
    unknown = [s for s in names if s not in SCENARIOS]
    if not names or unknown:
        raise ValueError(f"scenarios must be a non-empty subset of {', '.join(SCENARIOS)}; got {scenarios!r}")
    return list(dict.fromkeys(names))


def _check_count(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _write_episode(job: tuple[str, int, str, str, int, int, int, float]) -> str:
    """Simulate and store one episode (runs in a worker process); returns its id."""
    from worldmodel.video import write_video

    out, index, scenario, split, seed, frames, size, fps = job
    episode = simulate(scenario, split, episode_seed(seed, index), frames=frames, size=size, fps=fps)
    ident = episode_id(split, index, scenario)
    root = Path(out)
    write_video(root / VIDEO_DIR / f"{ident}.mkv", episode.frames, fps=fps)
    write_json_atomic(root / ANNOTATION_DIR / f"{ident}.json", episode.annotation, indent=None)
    return ident


def _remove_stale_temporaries(root: Path) -> None:
    """Delete temporary files left by a generator that was killed (named ``.<stem>.<random>.tmp<suffix>``)."""
    for sub in (VIDEO_DIR, ANNOTATION_DIR):
        folder = root / sub
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith(".") and ".tmp" in path.name:
                    path.unlink(missing_ok=True)


def _check_settings(root: Path, settings: dict[str, Any]) -> None:
    """Write the settings file, or check that an existing one matches (same command, resumed)."""
    path = root / SETTINGS
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in settings if old.get(k) != settings[k]]
        if diff:
            changes = ", ".join(f"{k} {old.get(k)!r} -> {settings[k]!r}" for k in diff)
            raise ValueError(f"{root} already holds a dataset generated with other settings ({changes}); "
                             "use another --out folder or the original settings")
    else:
        write_json_atomic(path, settings)


def _manifest_record(root: Path, ident: str) -> dict[str, Any]:
    annotation = json.loads((root / ANNOTATION_DIR / f"{ident}.json").read_text(encoding="utf-8"))
    return {
        "id": ident,
        "video": f"{VIDEO_DIR}/{ident}.mkv",
        "annotation": f"{ANNOTATION_DIR}/{ident}.json",
        "caption": annotation["captions"][0],
        "scenario": annotation["scenario"],
        "split": annotation["split"],
        "frames": annotation["frames"],
        "height": annotation["height"],
        "width": annotation["width"],
        "fps": annotation["fps"],
        "seed": annotation["seed"],
    }


def _progress(iterable: Iterable[Any], total: int, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc="episodes", unit="ep")


def generate_dataset(
    out: str | os.PathLike,
    episodes: int,
    seed: int,
    split: str,
    scenarios: str | Sequence[str] | None = None,
    frames: int = 17,
    size: int = 64,
    workers: int = 1,
    fps: float = 10.0,
    progress: bool = False,
) -> Path:
    """Generate (or complete) a dataset folder; return the path of its manifest.

    Args:
        out: dataset folder (created if missing).
        episodes: number of episodes; episodes ``0 .. episodes - 1`` are listed in the manifest.
        seed: dataset seed (non-negative).
        split: one of ``SPLITS``.
        scenarios: scenario names (list or comma-separated string); ``None`` for all. Episodes cycle
            through them in order.
        frames, size, fps: clip length, frame size in pixels and frame rate.
        workers: worker processes for simulation, rendering and encoding.
        progress: show a tqdm progress bar.
    """
    _check_count("episodes", episodes, 1)
    _check_count("seed", seed, 0)
    _check_count("workers", workers, 1)
    check_scenario_split("uniform", split)
    check_frames_size(frames, size)
    check_fps(fps)
    names = parse_scenarios(scenarios)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "split": split, "scenarios": names, "frames": frames, "size": size, "fps": float(fps)}
    _check_settings(root, settings)
    _remove_stale_temporaries(root)
    jobs = []
    for index in range(episodes):
        scenario = names[index % len(names)]
        ident = episode_id(split, index, scenario)
        if not (root / ANNOTATION_DIR / f"{ident}.json").exists() or not (root / VIDEO_DIR / f"{ident}.mkv").exists():
            jobs.append((str(root), index, scenario, split, seed, frames, size, float(fps)))
    if workers == 1 or len(jobs) <= 1:
        for _ in _progress(map(_write_episode, jobs), len(jobs), progress):
            pass
    else:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            chunk = max(1, min(16, len(jobs) // (4 * workers)))
            for _ in _progress(pool.map(_write_episode, jobs, chunksize=chunk), len(jobs), progress):
                pass
    ids = [episode_id(split, i, names[i % len(names)]) for i in range(episodes)]
    lines = [json.dumps(_manifest_record(root, ident)) for ident in ids]
    write_text_atomic(root / MANIFEST, "\n".join(lines) + "\n")
    return root / MANIFEST


def read_manifest(root: str | os.PathLike) -> list[dict[str, Any]]:
    """The manifest records of a dataset folder (raises a clear error when it is missing or malformed)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; expected a folder made by `worldmodel data generate`")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from err
        missing = {"id", "video", "caption", "frames", "height", "width"} - set(record)
        if missing:
            raise ValueError(f"{path}:{number}: manifest line lacks {', '.join(sorted(missing))}")
        records.append(record)
    return records
