"""The physics world: pymunk simulation of balls in a box, rendered to frames with annotations.

``simulate(scenario, split, seed)`` is a pure function: the same arguments give bit-identical
frames and annotations in any process. The simulation runs in world units (the frame is
``WORLD_SIZE`` = 10 units across, as in PhyWorld) with ``substeps`` physics steps between frames;
annotations are converted to pixels (see :mod:`worldmodel.datasets.render` for the pixel
convention) and sampled exactly at frame times ``k / fps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymunk

from worldmodel.datasets.captions import make_captions
from worldmodel.datasets.palette import PALETTE
from worldmodel.datasets.render import render_discs
from worldmodel.datasets.scenarios import WORLD_SIZE, Scene, check_scenario_split, sample_scene

BALL, WALL = 1, 2
WALL_THICKNESS = 1.0  # units; walls are static segments just outside the frame
MIN_EVENT_SPEED = 0.2  # units/s: contacts slower than this (resting on the floor) are not events
MAX_FRAMES = 1024
MAX_SIZE = 1024


@dataclass
class Episode:
    """One simulated episode: ``frames`` uint8 ``(T, H, W, 3)`` and its ``annotation`` dict."""

    scenario: str
    split: str
    seed: int
    frames: np.ndarray = field(repr=False)
    annotation: dict[str, Any] = field(repr=False)

    @property
    def captions(self) -> list[str]:
        """The caption paraphrases of this episode (the first is the canonical one)."""
        return self.annotation["captions"]


def check_fps(fps: float) -> None:
    """Raise a clear ValueError unless ``fps`` is a number in (0, 1000] (NaN and infinity are refused)."""
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 1000:
        raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")


def check_frames_size(frames: int, size: int) -> None:
    """Raise a clear ValueError for an unusable number of frames or frame size."""
    if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"frames must be an integer from 1 to {MAX_FRAMES}, got {frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from 8 to {MAX_SIZE} pixels, got {size!r}")


def _build_space(scene: Scene) -> tuple[pymunk.Space, list[pymunk.Body], dict[pymunk.Shape, str]]:
    """A pymunk space with the box walls and one dynamic circle per ball."""
    space = pymunk.Space()
    space.gravity = scene.gravity
    space.collision_slop = 1e-3
    # Chipmunk multiplies the two shapes' elasticities: sqrt(e) on every shape gives e on every contact.
    elasticity = math.sqrt(scene.restitution)
    s, h = WORLD_SIZE, WALL_THICKNESS
    walls = {
        "ceiling": ((-s, -h), (2 * s, -h)),
        "floor": ((-s, s + h), (2 * s, s + h)),
        "left wall": ((-h, -s), (-h, 2 * s)),
        "right wall": ((s + h, -s), (s + h, 2 * s)),
    }
    wall_names: dict[pymunk.Shape, str] = {}
    for name, (a, b) in walls.items():
        seg = pymunk.Segment(space.static_body, a, b, h)
        seg.elasticity, seg.friction, seg.collision_type = elasticity, 0.0, WALL
        space.add(seg)
        wall_names[seg] = name
    bodies = []
    for ball in scene.balls:
        body = pymunk.Body(ball.mass, pymunk.moment_for_circle(ball.mass, 0, ball.radius))
        body.position, body.velocity = ball.position, ball.velocity
        shape = pymunk.Circle(body, ball.radius)
        shape.elasticity, shape.friction, shape.collision_type = elasticity, 0.0, BALL
        space.add(body, shape)
        bodies.append(body)
    return space, bodies, wall_names


def _approach_speed(arbiter: pymunk.Arbiter) -> float:
    """Speed at which the two bodies approach each other along the contact normal."""
    a, b = arbiter.bodies
    rel = b.velocity - a.velocity
    return -float(rel.dot(arbiter.normal))


def run_physics(scene: Scene, frames: int, fps: float, substeps: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Simulate ``scene``; return states ``(T, N, 4)`` ``[x, y, vx, vy]`` in world units and the events."""
    space, bodies, wall_names = _build_space(scene)
    index = {body: i for i, body in enumerate(bodies)}
    events: list[dict[str, Any]] = []
    current = {"frame": 0}

    def on_ball_ball(arbiter: pymunk.Arbiter, _space: pymunk.Space, _data: Any) -> None:
        if _approach_speed(arbiter) > MIN_EVENT_SPEED:
            ids = sorted(index[s.body] for s in arbiter.shapes)
            events.append({"frame": current["frame"], "type": "collision", "objects": ids})

    def on_ball_wall(arbiter: pymunk.Arbiter, _space: pymunk.Space, _data: Any) -> None:
        if _approach_speed(arbiter) > MIN_EVENT_SPEED:
            ball, wall = arbiter.shapes
            events.append({"frame": current["frame"], "type": "bounce", "objects": [index[ball.body]],
                           "wall": wall_names[wall]})

    space.on_collision(BALL, BALL, begin=on_ball_ball)
    space.on_collision(BALL, WALL, begin=on_ball_wall)
    dt = 1.0 / (fps * substeps)
    states = np.empty((frames, len(bodies), 4), dtype=np.float64)
    for k in range(frames):
        if k > 0:
            current["frame"] = k  # events during (t_{k-1}, t_k] belong to frame k
            for _ in range(substeps):
                space.step(dt)
        for i, body in enumerate(bodies):
            states[k, i] = (body.position.x, body.position.y, body.velocity.x, body.velocity.y)
    return states, events


def simulate(scenario: str, split: str, seed: int, frames: int = 17, size: int = 64, fps: float = 10.0,
             substeps: int = 20) -> Episode:
    """Simulate and render one episode.

    Args:
        scenario: one of ``SCENARIOS`` (uniform, parabola, bounce, collision, multi).
        split: one of ``SPLITS`` (train, val, test_id, test_ood); decides the parameter ranges and
            the random stream, so splits never overlap.
        seed: non-negative episode seed.
        frames: number of frames ``T``.
        size: frame height and width in pixels (the world is 10 units across).
        fps: frames per second (PhyWorld: 10).
        substeps: physics steps between two frames.

    Returns:
        An :class:`Episode` with ``frames`` uint8 ``(T, size, size, 3)`` and the annotation dict
        (``fps``, ``pixels_per_unit``, ``gravity`` px/s^2, ``restitution``, ``objects``, ``states``
        per frame per object ``[x, y, vx, vy]`` in px and px/s, ``events``, ``captions``, plus
        ``scenario``, ``split``, ``seed``, ``world_size``).
    """
    check_scenario_split(scenario, split)
    check_frames_size(frames, size)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    check_fps(fps)
    if not isinstance(substeps, int) or substeps < 1:
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    scene = sample_scene(scenario, split, int(seed))
    states, events = run_physics(scene, frames, float(fps), substeps)
    ppu = size / WORLD_SIZE
    px = states * ppu  # (T, N, 4) in px and px/s
    px[..., :2] -= 0.5  # world x in [0, 10] covers pixel centres -0.5 .. size - 0.5
    radii = np.array([b.radius * ppu for b in scene.balls])
    rgb = np.array([PALETTE[b.color] for b in scene.balls])
    video = render_discs(px[..., :2], radii, rgb, size, size)
    objects = [
        {"id": i, "color": b.color, "rgb": list(PALETTE[b.color]), "radius": float(radii[i]), "mass": b.mass}
        for i, b in enumerate(scene.balls)
    ]
    annotation: dict[str, Any] = {
        "scenario": scenario,
        "split": split,
        "seed": int(seed),
        "fps": float(fps),
        "frames": frames,
        "height": size,
        "width": size,
        "world_size": WORLD_SIZE,
        "pixels_per_unit": ppu,
        "gravity": [scene.gravity[0] * ppu, scene.gravity[1] * ppu],
        "restitution": scene.restitution,
        "objects": objects,
        "states": px.tolist(),
        "events": events,
    }
    annotation["captions"] = make_captions(annotation)
    return Episode(scenario, split, int(seed), video, annotation)
