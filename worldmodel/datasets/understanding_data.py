"""Understanding examples for joint training: per-episode targets from the annotations, drawn with a seeded stream.

An understanding example is the episode's codes (every latent frame for descriptions and descriptive questions, the
first ``context_latent_frames`` for predictive ones), a prompt through the bridge (the question, or
:data:`DESCRIBE_PROMPT`) and the answer text the world model writes after ``[TXT]`` (docs/sequence-layout.md).
:func:`load_targets` precomputes, per cached episode, the description and every template question with its exact
answer (:func:`worldmodel.understanding.questions_for`); :class:`UnderstandingTokenDataset` adds one drawn example
to each item of a token cache, from a stream seeded by ``(seed, item, visit)`` (same seed, same examples).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.datasets.palette import COLOR_NAMES
from worldmodel.datasets.tokens import TokenDataset
from worldmodel.understanding import CANNOT_ANSWER, Question, describe, parse_question, questions_for
from worldmodel.understanding.questions import render_question

DESCRIBE_PROMPT = "describe the video"
DEFAULT_CONTEXT_LATENT_FRAMES = 2  # predictive questions see the first 2 latent frames (5 frames at tc = 4)
ABSENT_SHARE = 0.05  # share of questions asked about a colour the clip lacks (answer: "cannot answer")
ABSENT_TYPES = ("size", "bounces", "first_wall", "position")


@dataclass(frozen=True)
class EpisodeTargets:
    """What one episode teaches: its description, its questions ``(type, text, answer, predictive)``, its colours,
    the index of its last frame (the frame position questions ask about) and, given the latent grid, the latent
    cells each ball covers (``cells[colour]``: bool ``(t, h, w)``, for the binding probe)."""

    description: str
    questions: tuple[tuple[str, str, str, bool], ...]
    colours: tuple[str, ...]
    last_frame: int
    cells: dict[str, np.ndarray] = field(default_factory=dict)


def ball_cells(annotation: dict[str, Any], grid: tuple[int, int, int, int]) -> dict[str, np.ndarray]:
    """Per ball colour, the latent cells ``(t, h, w)`` its disc touches in any video frame of that latent frame
    (latent frame 0 is frame 0, latent frame k covers frames ``1 + tc (k - 1)`` .. ``tc k``); ``grid = (t, h, w,
    tc)``."""
    t, h, w, tc = grid
    states = np.asarray(annotation["states"], dtype=np.float64)  # (T, N, 4) px
    ch, cw = float(annotation["height"]) / h, float(annotation["width"]) / w  # cell size in px
    top, left = np.arange(h) * ch - 0.5, np.arange(w) * cw - 0.5  # cell edges in pixel-centre coordinates
    cells = {}
    for n, obj in enumerate(annotation["objects"]):
        covered = np.zeros((t, h, w), dtype=bool)
        for k in range(t):
            frames = [0] if k == 0 else range(1 + tc * (k - 1), min(tc * k + 1, len(states)))
            for f in frames:
                x, y = states[f, n, :2]
                dy = np.clip(y, top, top + ch) - y  # (h,) to the nearest point of each cell row
                dx = np.clip(x, left, left + cw) - x  # (w,)
                covered[k] |= dy[:, None] ** 2 + dx[None, :] ** 2 <= obj["radius"] ** 2
        cells[obj["color"]] = covered
    return cells


def context_video_frames(context_latent_frames: int, temporal_compression: int) -> int:
    """Video frames covered by the first ``context_latent_frames`` latent frames (the first frame is its own)."""
    return 1 + temporal_compression * (context_latent_frames - 1)


def episode_targets(annotation: dict[str, Any], context_frames: int,
                    grid: tuple[int, int, int, int] | None = None) -> EpisodeTargets:
    """The :class:`EpisodeTargets` of a simulator annotation (predictive answers: frames >= ``context_frames``;
    with ``grid = (t, h, w, tc)`` also the cells each ball covers)."""
    questions = tuple((q.type, render_question(q), a, q.predictive)
                      for q, a in questions_for(annotation, context_frames))
    return EpisodeTargets(describe(annotation), questions, tuple(o["color"] for o in annotation["objects"]),
                          len(annotation["states"]) - 1, ball_cells(annotation, grid) if grid else {})


def load_targets(dataset_dir: str | os.PathLike, ids: list[str], context_frames: int,
                 grid: tuple[int, int, int, int] | None = None) -> dict[str, EpisodeTargets]:
    """:class:`EpisodeTargets` of the episodes ``ids`` of a dataset folder (its manifest names each annotation)."""
    from worldmodel.datasets.storage import read_manifest

    root = Path(dataset_dir)
    if not (root / "manifest.jsonl").is_file():
        raise FileNotFoundError(f"{root}: no manifest.jsonl, so no annotations for the understanding targets (give "
                                "the dataset folder the token cache was encoded from)")
    paths = {r["id"]: r.get("annotation") for r in read_manifest(root)}
    targets = {}
    for ident in ids:
        path = paths.get(ident)
        if not path or not (root / path).is_file():
            raise FileNotFoundError(f"{root}: episode {ident} has no annotation file, which understanding examples "
                                    "need (simulator datasets have one per episode; user clips have none)")
        targets[ident] = episode_targets(json.loads((root / path).read_text(encoding="utf-8")), context_frames,
                                         grid)
    return targets


def draw_example(targets: EpisodeTargets, rng: random.Random, description_share: float, latent_frames: int,
                 context_latent_frames: int, read_share: float = 0.0) -> dict[str, Any]:
    """One understanding example ``{"prompt", "answer", "latent_frames"}``: the description with probability
    ``description_share``, else a question of a question type drawn uniformly (then an instance of it), a few
    (:data:`ABSENT_SHARE`) about a colour the clip lacks.

    A predictive question shows the first ``context_latent_frames`` latent frames, or with probability
    ``read_share`` every latent frame ("read" mode: the answer is unchanged, about the frames after the context,
    now read from the clip; what :meth:`VideoToTextPipeline.ask` with ``imagine`` relies on after it has imagined
    those frames). With ``read_share == 0`` the draws are those of earlier versions (no extra random draw).

    ``"cells"``: for a question that names balls, when ``targets`` holds their cells, 0 / 1 per code the example
    shows (raster order): whether a named ball touches that latent cell (the binding probe's target); else None."""
    if rng.random() < description_share:
        return {"prompt": DESCRIBE_PROMPT, "answer": targets.description, "latent_frames": latent_frames,
                "cells": None}
    absent = [c for c in COLOR_NAMES if c not in targets.colours]
    if absent and rng.random() < ABSENT_SHARE:
        kind, colour = rng.choice(ABSENT_TYPES), rng.choice(absent)
        question = Question(kind, (colour, targets.last_frame) if kind == "position" else (colour,))
        forecast = question.predictive and not (read_share > 0 and rng.random() < read_share)
        frames = context_latent_frames if forecast else latent_frames
        return {"prompt": render_question(question), "answer": CANNOT_ANSWER, "latent_frames": frames,
                "cells": named_cells(targets, question, frames)}
    by_type: dict[str, list[tuple[str, str, str, bool]]] = {}
    for question in targets.questions:
        by_type.setdefault(question[0], []).append(question)
    _, text, answer, predictive = rng.choice(by_type[rng.choice(sorted(by_type))])
    forecast = predictive and not (read_share > 0 and rng.random() < read_share)
    frames = context_latent_frames if forecast else latent_frames
    return {"prompt": text, "answer": answer, "latent_frames": frames,
            "cells": named_cells(targets, parse_question(text), frames)}


def named_cells(targets: EpisodeTargets, question: Question | None, frames: int) -> tuple[int, ...] | None:
    """0 / 1 per code of the first ``frames`` latent frames: whether a ball the question names touches the cell (all
    0 for a colour the clip lacks); None for a question naming no ball, or targets without cells."""
    colours = [a for a in (question.args if question else ()) if isinstance(a, str)]
    if not colours or not targets.cells:
        return None
    shape = next(iter(targets.cells.values())).shape  # (t, h, w)
    covered = np.zeros(shape, dtype=bool)
    for colour in colours:
        if colour in targets.cells:
            covered |= targets.cells[colour]
    return tuple(int(v) for v in covered[:frames].reshape(-1))


class UnderstandingTokenDataset(TokenDataset):
    """A :class:`TokenDataset` whose items also hold ``"understanding"``: one example drawn by :func:`draw_example`.

    Args:
        cache_dir: the token cache.
        annotations: the dataset folder it was encoded from (default: the ``dataset`` its ``meta.json`` names).
        context_latent_frames: latent frames predictive questions see (1 to the clip's latent frames - 1).
        description_share: share of examples that are descriptions.
        read_share: share of predictive questions shown every latent frame (:func:`draw_example`).
        seed: seeds the caption and example draws; ``redraw=False`` (validation) draws the same example each visit.
    """

    def __init__(self, cache_dir: str | os.PathLike, annotations: str | os.PathLike | None = None,
                 context_latent_frames: int = DEFAULT_CONTEXT_LATENT_FRAMES, description_share: float = 0.25,
                 seed: int = 0, redraw: bool = True, read_share: float = 0.0) -> None:
        super().__init__(cache_dir, seed=seed, random_caption=redraw)
        t = self.latent_shape[0]
        if not 1 <= context_latent_frames < t:
            raise ValueError(f"context_latent_frames must be from 1 to {t - 1} (the clips have {t} latent frames), "
                             f"got {context_latent_frames}")
        if not 0.0 <= description_share <= 1.0:
            raise ValueError(f"description_share must be a probability in [0, 1], got {description_share}")
        if not 0.0 <= read_share <= 1.0:
            raise ValueError(f"read_share must be a probability in [0, 1], got {read_share}")
        tc = (int(self.meta["frames"]) - 1) // (t - 1)
        self.context_latent_frames, self.description_share = context_latent_frames, description_share
        self.read_share = read_share
        self.redraw = redraw
        root = annotations if annotations is not None else self.meta.get("dataset")
        if root is None:
            raise ValueError(f"{self.cache_dir}: meta.json names no dataset folder; pass annotations=DATASET_DIR")
        context = context_video_frames(context_latent_frames, tc)
        grid = (t, *self.latent_shape[1:], tc)
        self.targets = load_targets(root, [entry["id"] for entry in self.index], context, grid)
        self._draws = [0] * len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        rng = random.Random(f"{self.seed}:{i}:{self._draws[i]}:understanding")
        self._draws[i] += int(self.redraw)
        item["understanding"] = draw_example(self.targets[item["id"]], rng, self.description_share,
                                             self.latent_shape[0], self.context_latent_frames, self.read_share)
        return item
