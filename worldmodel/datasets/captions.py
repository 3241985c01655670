"""Captions from annotations: several paraphrases naming colours, sizes, directions, bounces, collisions.

Captions are a deterministic function of the annotation. Every caption fits in
``MAX_CAPTION_BYTES`` UTF-8 bytes (the text tokenizer's default limit); longer paraphrases are
dropped, and the first caption returned is the canonical one (written to the manifest).
"""

from __future__ import annotations

import math
from typing import Any

MAX_CAPTION_BYTES = 128
_COUNTS = {1: "once", 2: "twice", 3: "three times"}
_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
_DIRECTIONS = ("to the right", "down and to the right", "downwards", "down and to the left",
               "to the left", "up and to the left", "upwards", "up and to the right")


def size_word(radius_units: float) -> str:
    """Size adjective of a ball from its radius in world units (in-distribution radii: 0.5 .. 1.5)."""
    if radius_units < 0.65:
        return "tiny"
    if radius_units < 0.95:
        return "small"
    if radius_units < 1.2:
        return "medium"
    if radius_units < 1.5:
        return "large"
    return "huge"


def direction_word(vx: float, vy: float) -> str:
    """One of eight compass words for a velocity in image coordinates (y down)."""
    angle = math.atan2(vy, vx)  # y down: positive angle points down
    return _DIRECTIONS[round(angle / (math.pi / 4)) % 8]


def speed_word(speed_units: float) -> str:
    """``slowly``/``fast`` for speeds outside the usual 1..4 units/s, else empty."""
    if speed_units < 0.9:
        return "slowly"
    if speed_units > 4.3:
        return "fast"
    return ""


def times(n: int) -> str:
    """``once``, ``twice``, ``three times``, ``5 times``."""
    return _COUNTS.get(n, f"{n} times")


def _motion(vx: float, vy: float, ppu: float) -> str:
    speed = math.hypot(vx, vy) / ppu
    if speed < 0.05:
        return "stays still"
    return " ".join(w for w in ("moves", direction_word(vx, vy), speed_word(speed)) if w)


def make_captions(annotation: dict[str, Any]) -> list[str]:
    """Paraphrases describing one episode; the first is the canonical caption."""
    ppu = annotation["pixels_per_unit"]
    objects = annotation["objects"]
    first = annotation["states"][0]
    events = annotation["events"]
    names = [f"{size_word(o['radius'] / ppu)} {o['color']}" for o in objects]
    bounces = [sum(1 for e in events if e["type"] == "bounce" and o["id"] in e["objects"]) for o in objects]
    collisions = [e for e in events if e["type"] == "collision"]
    build = {
        "uniform": _uniform,
        "parabola": _parabola,
        "bounce": _bounce,
        "collision": _collision,
        "multi": _multi,
    }[annotation["scenario"]]
    captions = build(names, first, bounces, collisions, ppu, annotation)
    fitting = [c for c in captions if len(c.encode("utf-8")) <= MAX_CAPTION_BYTES]
    return fitting or [min(captions, key=len)[:MAX_CAPTION_BYTES]]


def _wall_clause(n: int, verb: str = "bounces off the walls") -> str:
    return f" and {verb} {times(n)}" if n else ""


def _uniform(names, first, bounces, collisions, ppu, annotation) -> list[str]:
    vx, vy = first[0][2:]
    name, motion, wall = names[0], _motion(vx, vy, ppu), _wall_clause(bounces[0])
    if motion == "stays still":
        return [f"a {name} ball stays still", f"a {name} ball rests in place without gravity",
                f"nothing moves: a {name} ball at rest"]
    d = direction_word(vx, vy)
    return [
        f"a {name} ball {motion} at constant speed{wall}",
        f"a {name} ball glides {d} without gravity{wall}",
        f"the {name} ball travels {d} in a straight line{wall}",
        f"{name} ball, uniform motion {d}" + (f", {times(bounces[0])} off a wall" if bounces[0] else ""),
    ]


def _parabola(names, first, bounces, collisions, ppu, annotation) -> list[str]:
    vx, vy = first[0][2:]
    name = names[0]
    side = "to the right" if vx >= 0 else "to the left"
    how = "upwards and " if vy < -0.3 * abs(vx) else ""
    wall = _wall_clause(bounces[0], "bounces")
    return [
        f"a {name} ball is thrown {how}{side} and falls in a parabola{wall}",
        f"a {name} ball flies {side} along a parabolic arc under gravity{wall}",
        f"someone throws a {name} ball {side}; gravity bends its path{wall}",
        f"the {name} ball follows a parabola {side}{wall}",
    ]


def _bounce_one(name: str, vx: float, n: int, ppu: float) -> str:
    launch = "dropped" if abs(vx) / ppu < 1e-9 else f"thrown {'right' if vx > 0 else 'left'}"
    return f"a {name} ball is {launch} and " + (f"bounces {times(n)}" if n else "falls")


def _bounce(names, first, bounces, collisions, ppu, annotation) -> list[str]:
    e = annotation["restitution"]
    springy = "very bouncy" if e > 0.85 else "bouncy" if e > 0.65 else "soft"
    parts = [_bounce_one(nm, s[2], n, ppu) for nm, s, n in zip(names, first, bounces, strict=True)]
    total = sum(bounces)
    colors = " and ".join(nm for nm in names)
    return [
        "; ".join(parts),
        f"{_NUMBERS[len(names)]} {springy} ball{'s' if len(names) > 1 else ''} ({colors}) hit the floor, "
        f"{total} bounce{'s' if total != 1 else ''} in all",
        f"{colors} ball{'s' if len(names) > 1 else ''} falling onto a {springy} floor",
    ]


def _collision(names, first, bounces, collisions, ppu, annotation) -> list[str]:
    (xa, ya, *_), (xb, yb, *_) = first
    radius_sum = sum(o["radius"] for o in annotation["objects"])
    head_on = abs(ya - yb) < 0.05 * radius_sum
    a, b = names
    if not collisions:
        return [f"a {a} ball and a {b} ball move towards each other but do not meet",
                f"{a} and {b} balls drift towards each other without touching"]
    how = "head-on" if head_on else "at an angle"
    again = f" ({times(len(collisions))})" if len(collisions) > 1 else ""
    return [
        f"a {a} ball and a {b} ball move towards each other and collide {how}{again}",
        f"the {a} ball hits the {b} ball {how}{again}",
        f"two balls, {a} and {b}, meet {how} and bounce apart{again}",
        f"elastic {'head-on' if head_on else 'oblique'} collision of a {a} and a {b} ball",
    ]


def _multi(names, first, bounces, collisions, ppu, annotation) -> list[str]:
    n = len(names)
    colors = ", ".join(nm.split()[-1] for nm in names)
    hits = len(collisions)
    hit_clause = f"they collide {times(hits)}" if hits else "they never touch"
    return [
        f"{_NUMBERS[n]} balls ({colors}) fly and bounce in a box; {hit_clause}",
        f"{colors} balls bounce around under gravity; {hit_clause}",
        f"a box with {_NUMBERS[n]} bouncing balls, {hits} collision{'s' if hits != 1 else ''} between them",
    ]
