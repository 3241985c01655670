"""Descriptions of an episode: what is in the clip and what happens, in one short line a parser can read back.

Format (UTF-8, at most :data:`MAX_DESCRIPTION_BYTES` bytes; frames are counted from 0)::

    balls: small red, large cyan. motion: red right, cyan left. gravity: no.
    events: f7 red bounce right wall; f12 red cyan collide.

(one line in the output; broken here to fit)

- ``balls``: every ball as ``SIZE COLOUR`` (sizes as in the captions: tiny / small / medium / large / huge);
- ``motion``: each ball's initial direction (eight compass words without "to the": ``right``, ``down right``,
  ``down``, ... or ``still``);
- ``gravity``: ``yes`` or ``no``;
- ``events``: every bounce (with the wall) and collision in time order as ``fFRAME ...``; ``none`` when there is none.
  When the line would exceed the byte limit the last events are dropped (about one ``multi`` episode in eight,
  none of the others); scores compare a model's description with this written target
  (:func:`target_description`), not with the untruncated event list.

:func:`describe` writes it from a simulator annotation; :func:`parse_description` reads one back (also from a
model's output) into :class:`Description`, and :func:`attribute_accuracy` compares two of them attribute by
attribute (count, colours, sizes, motion, gravity, events).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from worldmodel.datasets.captions import size_word

MAX_DESCRIPTION_BYTES = 320
DIRECTIONS = ("right", "down right", "down", "down left", "left", "up left", "up", "up right")
WALLS = ("left wall", "right wall", "floor", "ceiling")
EVENT_FRAME_TOLERANCE = 1  # frames: an event found within this many frames of the true one counts


@dataclass
class Description:
    """What a description says: balls (size, colour), initial motion per colour, gravity, events."""

    balls: list[tuple[str, str]] = field(default_factory=list)  # (size, colour)
    motion: dict[str, str] = field(default_factory=dict)  # colour -> direction word or "still"
    gravity: bool | None = None
    # (frame, "bounce" or "collide", colours involved, wall or None)
    events: list[tuple[int, str, tuple[str, ...], str | None]] = field(default_factory=list)


def direction(vx: float, vy: float, ppu: float) -> str:
    """Eight-way direction word of a velocity in px/s (y down), or ``still`` below 0.05 world units/s."""
    if math.hypot(vx, vy) / ppu < 0.05:
        return "still"
    return DIRECTIONS[round(math.atan2(vy, vx) / (math.pi / 4)) % 8]


def from_annotation(annotation: dict[str, Any]) -> Description:
    """The true :class:`Description` of a simulator episode."""
    ppu = float(annotation["pixels_per_unit"])
    objects = annotation["objects"]
    colours = [o["color"] for o in objects]
    first = annotation["states"][0]
    gravity = math.hypot(*annotation.get("gravity", (0.0, 0.0))) > 0
    events = []
    for e in sorted(annotation["events"], key=lambda e: (e["frame"], e["type"], e["objects"])):
        names = tuple(colours[k] for k in e["objects"])
        event = (int(e["frame"]), "bounce" if e["type"] == "bounce" else "collide", names, e.get("wall"))
        if event not in events:  # several contacts of the same pair within one frame are one event
            events.append(event)
    return Description(balls=[(size_word(o["radius"] / ppu), o["color"]) for o in objects],
                       motion={c: direction(s[2], s[3], ppu) for c, s in zip(colours, first, strict=True)},
                       gravity=gravity, events=events)


def render(description: Description) -> str:
    """The one-line text of a description (events dropped from the end if it would exceed the byte limit)."""
    events = list(description.events)
    while True:
        parts = [
            "balls: " + ", ".join(f"{size} {colour}" for size, colour in description.balls) + ".",
            "motion: " + ", ".join(f"{c} {d}" for c, d in description.motion.items()) + ".",
            f"gravity: {'yes' if description.gravity else 'no'}.",
            "events: " + ("; ".join(_event_text(e) for e in events) if events else "none") + ".",
        ]
        text = " ".join(parts)
        if len(text.encode("utf-8")) <= MAX_DESCRIPTION_BYTES or not events:
            return text
        events.pop()


def _event_text(event: tuple[int, str, tuple[str, ...], str | None]) -> str:
    frame, kind, names, wall = event
    return f"f{frame} {' '.join(names)} {kind}" + (f" {wall}" if kind == "bounce" and wall else "")


def describe(annotation: dict[str, Any]) -> str:
    """The description text of a simulator episode."""
    return render(from_annotation(annotation))


def target_description(annotation: dict[str, Any]) -> Description:
    """What the description of an episode says once written (events beyond the byte limit dropped)."""
    return parse_description(describe(annotation))


_SECTION = re.compile(r"(balls|motion|gravity|events):\s*([^.]*)\.?")
_EVENT = re.compile(rf"f(\d+)\s+([a-z ]+?)\s+(bounce|collide)(?:\s+({'|'.join(WALLS)}))?$")


def parse_description(text: str) -> Description:
    """Read a description back; unreadable parts are left empty (a model's garbled output parses to less)."""
    out = Description()
    for key, body in _SECTION.findall(text.lower()):
        body = body.strip()
        if key == "balls":
            for item in filter(None, (p.strip() for p in body.split(","))):
                words = item.split()
                if len(words) == 2:
                    out.balls.append((words[0], words[1]))
        elif key == "motion":
            for item in filter(None, (p.strip() for p in body.split(","))):
                colour, _, word = item.partition(" ")
                if word in (*DIRECTIONS, "still"):
                    out.motion[colour] = word
        elif key == "gravity":
            out.gravity = {"yes": True, "no": False}.get(body)
        elif key == "events" and body != "none":
            for item in filter(None, (p.strip() for p in body.split(";"))):
                match = _EVENT.match(item)
                if match:
                    frame, names, kind, wall = match.groups()
                    out.events.append((int(frame), kind, tuple(names.split()), wall))
    return out


def _events_match(pred: list, true: list) -> bool:
    """Every true event is found once in ``pred`` (same type, balls and wall; frame within the tolerance), and
    ``pred`` has no extra event."""
    left = list(pred)
    for frame, kind, names, wall in true:
        hit = next((p for p in left if p[1] == kind and sorted(p[2]) == sorted(names) and p[3] == wall
                    and abs(p[0] - frame) <= EVENT_FRAME_TOLERANCE), None)
        if hit is None:
            return False
        left.remove(hit)
    return not left


def attribute_accuracy(pred: Description, true: Description) -> dict[str, bool]:
    """Per-attribute correctness of ``pred`` against ``true``: count, colours, sizes, motion, gravity, events."""
    true_sizes = {c: s for s, c in true.balls}
    pred_sizes = {c: s for s, c in pred.balls}
    return {
        "count": len(pred.balls) == len(true.balls),
        "colours": sorted(c for _, c in pred.balls) == sorted(c for _, c in true.balls),
        "sizes": pred_sizes == true_sizes,
        "motion": pred.motion == true.motion,
        "gravity": pred.gravity == true.gravity,
        "events": _events_match(pred.events, true.events),
    }
