"""Scenarios and splits: how the initial state of an episode is drawn (world units, y down).

The world is a closed box ``WORLD_SIZE`` units wide and high (PhyWorld: 10 units across the frame)
with elastic, frictionless walls. Parameter ranges follow PhyWorld (Kang et al. 2024):

- in distribution (``train``, ``val``, ``test_id``): speed in [1, 4] units/s, radius in [0.7, 1.4]
  (``collision``: [0.5, 1.5]);
- out of distribution (``test_ood``): speed in [0, 0.8] or [4.5, 6], radius in [0.3, 0.6] or
  [1.5, 2] (``collision``: [0.3, 0.5] or [1.5, 2]). Each OOD episode draws its speeds, its radii,
  or both from the OOD ranges (for every ball), so no OOD episode falls inside the in-distribution
  ranges. Walls are elastic except in ``bounce`` and ``multi`` (restitution e in [0.5, 1]).

``train``, ``val`` and ``test_id`` share ranges and are kept apart by their random streams: each
split (and scenario) seeds its own ``numpy.random.SeedSequence`` from a stable hash of its name.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from worldmodel.datasets.palette import COLOR_NAMES

WORLD_SIZE = 10.0
SCENARIOS: tuple[str, ...] = ("uniform", "parabola", "bounce", "collision", "multi")
SPLITS: tuple[str, ...] = ("train", "val", "test_id", "test_ood")

PARABOLA_GRAVITY = 2.5  # units/s^2, PhyWorld
BOUNCE_GRAVITY = 9.8  # units/s^2: strong enough for visible bounces within 1.6 s
MULTI_GRAVITY = 2.5
RESTITUTION_RANGE = (0.5, 1.0)
DENSITY_RANGE = (0.5, 2.0)  # mass = density * pi * r^2

ID_SPEED = ((1.0, 4.0),)
ID_RADIUS = ((0.7, 1.4),)
ID_RADIUS_COLLISION = ((0.5, 1.5),)
OOD_SPEED = ((0.0, 0.8), (4.5, 6.0))
OOD_RADIUS = ((0.3, 0.6), (1.5, 2.0))
OOD_RADIUS_COLLISION = ((0.3, 0.5), (1.5, 2.0))  # collision's ID radii reach 0.5 .. 1.5


@dataclass(frozen=True)
class Ball:
    """Initial state of one ball in world units (position and velocity, y down)."""

    radius: float
    mass: float
    color: str
    position: tuple[float, float]
    velocity: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """Everything the simulator needs: balls, gravity (units/s^2, y down) and restitution."""

    balls: tuple[Ball, ...]
    gravity: tuple[float, float]
    restitution: float


def stable_hash(name: str) -> int:
    """A hash of ``name`` that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(name.encode("utf-8"))


def scene_rng(scenario: str, split: str, seed: int) -> np.random.Generator:
    """The random generator of one episode: a function of (scenario, split, seed) only."""
    check_scenario_split(scenario, split)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    entropy = [stable_hash(split), stable_hash(scenario), int(seed)]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def check_scenario_split(scenario: str, split: str) -> None:
    """Raise a clear ValueError for an unknown scenario or split name."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")


def _uniform(rng: np.random.Generator, ranges: tuple[tuple[float, float], ...]) -> float:
    """Draw uniformly from a union of intervals (weighted by their lengths)."""
    widths = np.array([hi - lo for lo, hi in ranges])
    lo, hi = ranges[rng.choice(len(ranges), p=widths / widths.sum())]
    return float(rng.uniform(lo, hi))


class _Ranges:
    """Speed and radius ranges of one episode, decided once per episode for every ball."""

    def __init__(self, scenario: str, split: str, rng: np.random.Generator) -> None:
        collision = scenario == "collision"
        self.speed, self.radius = ID_SPEED, ID_RADIUS_COLLISION if collision else ID_RADIUS
        if split == "test_ood":
            mode = rng.choice(["speed", "radius", "both"])
            if mode in ("speed", "both"):
                self.speed = OOD_SPEED
            if mode in ("radius", "both"):
                self.radius = OOD_RADIUS_COLLISION if collision else OOD_RADIUS

    def draw_speed(self, rng: np.random.Generator) -> float:
        return _uniform(rng, self.speed)

    def draw_radius(self, rng: np.random.Generator) -> float:
        return _uniform(rng, self.radius)


def _mass(rng: np.random.Generator, radius: float) -> float:
    return float(rng.uniform(*DENSITY_RANGE) * math.pi * radius**2)


def _colors(rng: np.random.Generator, n: int) -> list[str]:
    return [COLOR_NAMES[i] for i in rng.choice(len(COLOR_NAMES), size=n, replace=False)]


def _place(rng: np.random.Generator, radii: list[float], tries: int = 500) -> list[tuple[float, float]] | None:
    """Non-overlapping random positions inside the box, or None when they do not fit."""
    placed: list[tuple[float, float]] = []
    for r in radii:
        for _ in range(tries):
            p = (float(rng.uniform(r, WORLD_SIZE - r)), float(rng.uniform(r, WORLD_SIZE - r)))
            if all(math.dist(p, q) > r + rq + 0.05 for q, rq in zip(placed, radii, strict=False)):
                placed.append(p)
                break
        else:
            return None
    return placed


def _direction(angle: float, speed: float) -> tuple[float, float]:
    return (speed * math.cos(angle), speed * math.sin(angle))


def _uniform_scene(rng: np.random.Generator, ranges: _Ranges) -> Scene:
    r = ranges.draw_radius(rng)
    (position,) = _place(rng, [r])
    velocity = _direction(rng.uniform(0, 2 * math.pi), ranges.draw_speed(rng))
    ball = Ball(r, _mass(rng, r), _colors(rng, 1)[0], position, velocity)
    return Scene((ball,), (0.0, 0.0), 1.0)


def _parabola_scene(rng: np.random.Generator, ranges: _Ranges) -> Scene:
    r = ranges.draw_radius(rng)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    speed = ranges.draw_speed(rng)
    up = rng.uniform(0.0, math.radians(45))  # thrown level or upwards (y down: negative vy)
    velocity = (sign * speed * math.cos(up), -speed * math.sin(up))
    x = rng.uniform(r, max(r, 0.35 * WORLD_SIZE))  # start behind, so most of the flight is visible
    x = x if sign > 0 else WORLD_SIZE - x
    y = rng.uniform(max(r, 0.25 * WORLD_SIZE), max(r, 0.55 * WORLD_SIZE))
    ball = Ball(r, _mass(rng, r), _colors(rng, 1)[0], (float(x), float(y)), velocity)
    return Scene((ball,), (0.0, PARABOLA_GRAVITY), 1.0)


def _bounce_scene(rng: np.random.Generator, ranges: _Ranges) -> Scene:
    n = int(rng.integers(1, 3))
    radii = [ranges.draw_radius(rng) for _ in range(n)]
    colors = _colors(rng, n)
    balls: list[Ball] = []
    lanes = np.linspace(0, WORLD_SIZE, n + 1)  # one vertical lane per ball, so they fall side by side
    for i, r in enumerate(radii):
        speed = ranges.draw_speed(rng)
        # dropped: pushed straight down; thrown: sideways. Either way |v| is drawn from the split's range.
        velocity = (0.0, speed) if rng.random() < 0.5 else ((1 if rng.random() < 0.5 else -1) * speed, 0.0)
        lo, hi = lanes[i] + r, lanes[i + 1] - r
        x = rng.uniform(lo, hi) if hi > lo else (lanes[i] + lanes[i + 1]) / 2
        y = rng.uniform(r, max(r, 0.4 * WORLD_SIZE))
        balls.append(Ball(r, _mass(rng, r), colors[i], (float(x), float(y)), velocity))
    return Scene(tuple(balls), (0.0, BOUNCE_GRAVITY), float(rng.uniform(*RESTITUTION_RANGE)))


def _collision_scene(rng: np.random.Generator, ranges: _Ranges) -> Scene:
    ra, rb = ranges.draw_radius(rng), ranges.draw_radius(rng)
    sa, sb = ranges.draw_speed(rng), ranges.draw_speed(rng)
    head_on = rng.random() < 0.5
    dy = 0.0 if head_on else float(rng.choice([-1, 1]) * rng.uniform(0.2, 0.8) * (ra + rb))
    dx_contact = math.sqrt((ra + rb) ** 2 - dy**2)
    t_contact = rng.uniform(0.3, 0.9)  # seconds until the balls touch
    room = WORLD_SIZE - ra - rb - dx_contact - 0.1
    t_contact = min(t_contact, room / (sa + sb)) if sa + sb > 0 else t_contact
    gap = dx_contact + (sa + sb) * t_contact  # horizontal centre distance at t = 0
    xa = rng.uniform(ra, WORLD_SIZE - rb - gap)
    y_mid = rng.uniform(max(ra, rb) + abs(dy) / 2 + 0.5, WORLD_SIZE - max(ra, rb) - abs(dy) / 2 - 0.5)
    colors = _colors(rng, 2)
    a = Ball(ra, _mass(rng, ra), colors[0], (float(xa), float(y_mid - dy / 2)), (sa, 0.0))
    b = Ball(rb, _mass(rng, rb), colors[1], (float(xa + gap), float(y_mid + dy / 2)), (-sb, 0.0))
    return Scene((a, b), (0.0, 0.0), 1.0)


def _multi_scene(rng: np.random.Generator, ranges: _Ranges) -> Scene:
    n = int(rng.integers(2, 5))
    radii = [ranges.draw_radius(rng) for _ in range(n)]
    positions = _place(rng, radii)
    while positions is None:  # very large OOD balls may not all fit: drop one and try again
        radii = radii[:-1]
        positions = _place(rng, radii)
    colors = _colors(rng, len(radii))
    balls = tuple(
        Ball(r, _mass(rng, r), c, p, _direction(rng.uniform(0, 2 * math.pi), ranges.draw_speed(rng)))
        for r, c, p in zip(radii, colors, positions, strict=True)
    )
    return Scene(balls, (0.0, MULTI_GRAVITY), float(rng.uniform(*RESTITUTION_RANGE)))


_BUILDERS = {
    "uniform": _uniform_scene,
    "parabola": _parabola_scene,
    "bounce": _bounce_scene,
    "collision": _collision_scene,
    "multi": _multi_scene,
}


def sample_scene(scenario: str, split: str, seed: int) -> Scene:
    """Draw the initial scene of episode ``seed`` of ``scenario`` in ``split`` (deterministic)."""
    rng = scene_rng(scenario, split, seed)
    return _BUILDERS[scenario](rng, _Ranges(scenario, split, rng))
