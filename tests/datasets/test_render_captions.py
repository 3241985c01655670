"""Renderer agrees with the annotations and with the coverage formula; captions describe the episode."""

import re

import numpy as np
import pytest

from worldmodel.datasets import SCENARIOS, SPLITS, simulate
from worldmodel.datasets.captions import MAX_CAPTION_BYTES, size_word, times
from worldmodel.datasets.palette import BACKGROUND, PALETTE
from worldmodel.datasets.render import render_discs


def test_matches_the_coverage_formula_pixel_by_pixel():
    rng = np.random.default_rng(0)
    centers = rng.uniform(-20, 60, size=(6, 3, 2))  # some discs partly or wholly outside the frame
    radii = np.array([1.3, 4.0, 9.5])
    colors = np.array([PALETTE["red"], PALETTE["green"], PALETTE["blue"]])
    got = render_discs(centers, radii, colors, 40, 48)
    image = np.empty((6, 40, 48, 3))
    image[:] = BACKGROUND
    ys, xs = np.mgrid[0:40, 0:48]
    for k in range(3):
        for t in range(6):
            d = np.hypot(xs - centers[t, k, 0], ys - centers[t, k, 1])
            alpha = np.clip(radii[k] + 0.5 - d, 0, 1)[..., None]
            image[t] += alpha * (colors[k] - image[t])
    assert got.shape == (6, 40, 48, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - np.rint(image).astype(int)).max() <= 1


def test_colour_mask_centroid_matches_the_annotated_centre():
    checked = 0
    for scenario in SCENARIOS:
        for split in SPLITS:
            for seed in range(4):
                episode = simulate(scenario, split, seed)
                a = episode.annotation
                states, size = np.array(a["states"]), a["height"]
                bg = np.array(BACKGROUND, dtype=float)
                for obj in a["objects"]:
                    i, r, rgb = obj["id"], obj["radius"], np.array(obj["rgb"], dtype=float)
                    for t, frame in enumerate(episode.frames.astype(float)):
                        x, y = states[t, i, :2]
                        inside = min(x, y, size - 1 - x, size - 1 - y) >= r + 1
                        apart = all(np.hypot(*(states[t, j, :2] - (x, y))) > r + o["radius"] + 2
                                    for j, o in enumerate(a["objects"]) if j != i)
                        if not (inside and apart):
                            continue
                        # coverage estimate: projection of (pixel - background) on (colour - background)
                        coverage = ((frame - bg) @ (rgb - bg)) / ((rgb - bg) @ (rgb - bg))
                        near_colour = np.abs(frame - (bg + coverage[..., None] * (rgb - bg))).sum(-1) < 12
                        rows, cols = np.nonzero((coverage >= 0.5) & near_colour)
                        assert abs(cols.mean() - x) <= 0.5 and abs(rows.mean() - y) <= 0.5, (scenario, t, x, y)
                        assert abs(np.sqrt(len(rows) / np.pi) - r) <= 0.5
                        checked += 1
    assert checked > 1000


def test_palette_colours_are_far_apart():
    colours = [np.array(c) for c in PALETTE.values()] + [np.array(BACKGROUND)]
    for i, a in enumerate(colours):
        for b in colours[i + 1 :]:
            assert np.abs(a - b).max() >= 100


def test_captions_name_colours_and_count_events():
    for scenario in SCENARIOS:
        for seed in range(10):
            a = simulate(scenario, "train", seed).annotation
            captions = a["captions"]
            assert len(captions) >= 2 and len(set(captions)) == len(captions)
            assert all(len(c.encode()) <= MAX_CAPTION_BYTES for c in captions)
            for obj in a["objects"]:
                assert obj["color"] in captions[0]
            if scenario == "uniform":
                bounces = len(a["events"])
                assert (f"bounces off the walls {times(bounces)}" in captions[0]) == (bounces > 0)
            if scenario == "multi":
                hits = sum(e["type"] == "collision" for e in a["events"])
                assert (f"collide {times(hits)}" in captions[0]) if hits else ("never touch" in captions[0])
            if scenario == "collision" and any(e["type"] == "collision" for e in a["events"]):
                assert re.search("head-on|at an angle", captions[0])


@pytest.mark.parametrize(("radius", "word"), [(0.4, "tiny"), (0.8, "small"), (1.0, "medium"), (1.3, "large"),
                                               (1.8, "huge")])
def test_size_words(radius, word):
    assert size_word(radius) == word
