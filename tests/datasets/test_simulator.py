"""Simulator: determinism across processes, split ranges, and independent physics checks on annotations."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from worldmodel.datasets import SCENARIOS, SPLITS, simulate
from worldmodel.datasets.scenarios import (
    ID_RADIUS,
    ID_RADIUS_COLLISION,
    ID_SPEED,
    OOD_RADIUS,
    OOD_RADIUS_COLLISION,
    OOD_SPEED,
)

SEEDS = range(12)


def digest(scenario: str, split: str, seed: int) -> str:
    """Hash of an episode's frames and annotation."""
    episode = simulate(scenario, split, seed)
    h = hashlib.sha256(episode.frames.tobytes())
    h.update(json.dumps(episode.annotation, sort_keys=True).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def episodes():
    """Episodes of every scenario and split, simulated once for this module."""
    return {(sc, sp, s): simulate(sc, sp, s) for sc in SCENARIOS for sp in SPLITS for s in SEEDS}


def test_same_episode_in_another_process():
    cases = [(sc, sp, 7) for sc in SCENARIOS for sp in ("train", "test_ood")]
    script = (
        "import hashlib, json\nfrom worldmodel.datasets import simulate\nout = []\n"
        f"for c in {cases!r}:\n"
        "    e = simulate(*c)\n    h = hashlib.sha256(e.frames.tobytes())\n"
        "    h.update(json.dumps(e.annotation, sort_keys=True).encode())\n    out.append(h.hexdigest())\n"
        "print(json.dumps(out))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [digest(*c) for c in cases]


def test_splits_and_seeds_give_different_episodes():
    hashes = {digest("collision", sp, s) for sp in SPLITS for s in range(3)}
    assert len(hashes) == len(SPLITS) * 3


def _in(value: float, ranges) -> bool:
    return any(lo - 1e-9 <= value <= hi + 1e-9 for lo, hi in ranges)


def test_parameter_ranges_follow_the_split(episodes):
    for (scenario, split, _), episode in episodes.items():
        a = episode.annotation
        ppu = a["pixels_per_unit"]
        radii = [o["radius"] / ppu for o in a["objects"]]
        speeds = [float(np.hypot(vx, vy)) / ppu for _, _, vx, vy in a["states"][0]]
        id_radius = ID_RADIUS_COLLISION if scenario == "collision" else ID_RADIUS
        ood_radius = OOD_RADIUS_COLLISION if scenario == "collision" else OOD_RADIUS
        if split == "test_ood":
            speed_ood = all(_in(v, OOD_SPEED) and not _in(v, ID_SPEED) for v in speeds)
            radius_ood = all(_in(r, ood_radius) and not _in(r, id_radius) for r in radii)
            assert speed_ood or radius_ood, (scenario, speeds, radii)
            assert all(_in(v, ID_SPEED + OOD_SPEED) for v in speeds)
        else:
            assert all(_in(v, ID_SPEED) for v in speeds), (scenario, split, speeds)
            assert all(_in(r, id_radius) for r in radii), (scenario, split, radii)


def test_annotation_contract(episodes):
    episode = episodes[("multi", "train", 0)]
    a = episode.annotation
    assert episode.frames.shape == (17, 64, 64, 3) and episode.frames.dtype == np.uint8
    assert {"fps", "pixels_per_unit", "gravity", "restitution", "objects", "states", "events", "captions"} <= set(a)
    assert a["pixels_per_unit"] == 6.4 and a["gravity"] == [0.0, 2.5 * 6.4]
    assert len(a["states"]) == 17 and all(len(s) == len(a["objects"]) for s in a["states"])
    assert {"id", "color", "rgb", "radius", "mass"} <= set(a["objects"][0])
    assert len({o["color"] for o in a["objects"]}) == len(a["objects"])
    for event in a["events"]:
        assert event["type"] in ("collision", "bounce") and 1 <= event["frame"] < 17


def _clear(state, radius, others, size, margin=1.0) -> bool:
    """A ball is in free flight at this frame: away from the walls and from the other balls."""
    x, y = state[0] + 0.5, state[1] + 0.5  # pixel-centre convention -> distance from the frame edge
    if min(x, y, size - x, size - y) < radius + margin:
        return False
    return all(np.hypot(state[0] - s[0], state[1] - s[1]) > radius + r + margin for s, r in others)


def test_free_flight_acceleration_equals_gravity(episodes):
    checked = 0
    for (scenario, _, _), episode in episodes.items():
        a = episode.annotation
        if scenario not in ("parabola", "bounce", "multi"):
            continue
        s = np.array(a["states"])  # (T, N, 4)
        g = np.array(a["gravity"])
        radii = [o["radius"] for o in a["objects"]]
        busy = {(e["frame"], i) for e in a["events"] for i in e["objects"]}
        for i, r in enumerate(radii):
            for k in range(1, len(s) - 1):
                frames_ok = all(
                    _clear(s[j, i], r, [(s[j, m], radii[m]) for m in range(len(radii)) if m != i], a["height"])
                    for j in (k - 1, k, k + 1)
                )
                if not frames_ok or (k, i) in busy or (k + 1, i) in busy:
                    continue
                fps = a["fps"]
                acc_v = (s[k + 1, i, 2:] - s[k, i, 2:]) * fps  # from velocities
                acc_x = (s[k + 1, i, :2] - 2 * s[k, i, :2] + s[k - 1, i, :2]) * fps**2  # from positions
                for acc in (acc_v, acc_x):
                    assert abs(acc[1] - g[1]) <= 0.01 * g[1], (scenario, k, acc, g)
                    assert abs(acc[0]) <= 0.01 * g[1]
                checked += 1
    assert checked > 200


def test_elastic_collisions_conserve_energy_and_momentum(episodes):
    energy_checks = momentum_checks = 0
    for (scenario, _, _), episode in episodes.items():
        a = episode.annotation
        if scenario not in ("collision", "uniform"):
            continue
        assert a["restitution"] == 1.0 and a["gravity"] == [0.0, 0.0]
        s = np.array(a["states"])  # (T, N, 4)
        m = np.array([o["mass"] for o in a["objects"]])  # (N,)
        energy = 0.5 * (m * (s[..., 2] ** 2 + s[..., 3] ** 2)).sum(-1)  # (T,)
        assert np.all(np.abs(energy / energy[0] - 1) <= 0.005), (scenario, energy)
        energy_checks += 1
        radii = [o["radius"] for o in a["objects"]]
        for event in (e for e in a["events"] if e["type"] == "collision"):
            k = event["frame"]
            walls = any(e["type"] == "bounce" and e["frame"] == k for e in a["events"])
            near_wall = any(not _clear(s[j, i], radii[i], [], a["height"]) for j in (k - 1, k) for i in range(2))
            if walls or near_wall:
                continue
            p0, p1 = (m[:, None] * s[k - 1, :, 2:]).sum(0), (m[:, None] * s[k, :, 2:]).sum(0)
            scale = (m * np.hypot(s[k - 1, :, 2], s[k - 1, :, 3])).sum()
            assert np.linalg.norm(p1 - p0) <= 0.005 * scale, (p0, p1)
            momentum_checks += 1
    assert energy_checks >= 2 * len(SPLITS) * len(SEEDS) and momentum_checks >= 10


def test_restitution_below_one_loses_energy_at_bounces(episodes):
    for split in SPLITS:
        a = episodes[("bounce", split, 0)].annotation
        assert 0.5 <= a["restitution"] <= 1.0
        assert any(e["type"] == "bounce" and e["wall"] == "floor" for e in a["events"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": "spin"}, "scenario must be one of"),
        ({"split": "dev"}, "split must be one of"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"frames": 0}, "frames must be an integer"),
        ({"size": 4}, "size must be an integer"),
    ],
)
def test_bad_arguments_get_a_clear_error(kwargs, message):
    args = {"scenario": "uniform", "split": "train", "seed": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        simulate(**args)


def test_other_sizes_and_lengths():
    episode = simulate("parabola", "val", 3, frames=5, size=33, fps=20.0)
    assert episode.frames.shape == (5, 33, 33, 3)
    assert episode.annotation["pixels_per_unit"] == pytest.approx(3.3)
