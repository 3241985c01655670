"""Question templates that a simulator annotation answers exactly, and the parser that maps free text onto them.

Descriptive questions are about the whole clip; predictive ones give the model only the first ``context_frames``
frames and ask about what happens after them (the answer is still read from the simulator's full episode).

=================  ================================================  ==========================================
type               template                                          answers
=================  ================================================  ==========================================
count              how many balls are there?                         a number word: one .. five
largest_colour     what colour is the largest ball?                  a palette colour
size               what size is the red ball?                        tiny / small / medium / large / huge
bounces            does the red ball bounce off a wall?              yes / no
collisions         how many collisions are there?                    a number (0, 1, 2, ...)
gravity            is there gravity?                                 yes / no
will_collide       will the red and blue balls collide?              yes / no          (predictive, two+ balls)
first_wall         which wall will the red ball hit first?           left wall / right wall / floor / ceiling /
                                                                     none              (predictive)
position           where will the red ball be at frame 16?           top left .. bottom right (a 3 x 3 grid of
                                                                     the frame)        (predictive)
=================  ================================================  ==========================================

A question that matches no template (or names a ball the clip does not hold) gets :data:`CANNOT_ANSWER`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from worldmodel.datasets.captions import size_word
from worldmodel.datasets.palette import COLOR_NAMES

CANNOT_ANSWER = "cannot answer"
DESCRIPTIVE = ("count", "largest_colour", "size", "bounces", "collisions", "gravity")
PREDICTIVE = ("will_collide", "first_wall", "position")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
ROWS, COLUMNS = ("top", "middle", "bottom"), ("left", "centre", "right")
_C = "|".join(COLOR_NAMES)
TEMPLATES: dict[str, re.Pattern[str]] = {
    "count": re.compile(r"how many balls"),
    "largest_colour": re.compile(r"(?:what|which) colou?r is the (?:largest|biggest) ball"),
    "size": re.compile(rf"what size is the ({_C}) ball"),
    "bounces": re.compile(rf"does the ({_C}) ball bounce"),
    "collisions": re.compile(r"how many collisions"),
    "gravity": re.compile(r"is there gravity"),
    "will_collide": re.compile(rf"will the ({_C}) and (?:the )?({_C}) balls? collide"),
    "first_wall": re.compile(rf"which wall will the ({_C}) ball hit first"),
    "position": re.compile(rf"where will the ({_C}) ball be at frame (\d+)"),
}


@dataclass(frozen=True)
class Question:
    """A parsed question: its template type and arguments (colours, a frame)."""

    type: str
    args: tuple[str | int, ...] = ()

    @property
    def predictive(self) -> bool:
        """Asked from the first frames only."""
        return self.type in PREDICTIVE


def parse_question(text: str) -> Question | None:
    """The template ``text`` matches (case and punctuation ignored), or ``None``."""
    text = " ".join(text.lower().replace("color", "colour").split())
    for kind, pattern in TEMPLATES.items():
        match = pattern.search(text)
        if match:
            return Question(kind, tuple(int(a) if a.isdigit() else a for a in match.groups()))
    return None


def render_question(question: Question) -> str:
    """The canonical text of a question."""
    a = question.args
    return {
        "count": "how many balls are there?",
        "largest_colour": "what colour is the largest ball?",
        "size": f"what size is the {a[0] if a else ''} ball?",
        "bounces": f"does the {a[0] if a else ''} ball bounce off a wall?",
        "collisions": "how many collisions are there?",
        "gravity": "is there gravity?",
        "will_collide": f"will the {a[0] if a else ''} and {a[1] if len(a) > 1 else ''} balls collide?",
        "first_wall": f"which wall will the {a[0] if a else ''} ball hit first?",
        "position": f"where will the {a[0] if a else ''} ball be at frame {a[1] if len(a) > 1 else ''}?",
    }[question.type]


def cell(x: float, y: float, width: int, height: int) -> str:
    """The 3 x 3 grid cell of pixel position ``(x, y)``: ``top left`` .. ``bottom right`` (``middle centre``)."""
    col = min(2, max(0, int(3 * (x + 0.5) / width)))
    row = min(2, max(0, int(3 * (y + 0.5) / height)))
    return f"{ROWS[row]} {COLUMNS[col]}"


def answer(question: Question, annotation: dict[str, Any], context_frames: int = 0) -> str:
    """The exact answer from the simulator's annotation; predictive questions concern frames >= ``context_frames``.

    Returns :data:`CANNOT_ANSWER` when the question names a ball the episode does not hold or a frame it lacks.
    """
    colours = [o["color"] for o in annotation["objects"]]
    events = annotation["events"]
    kind, args = question.type, question.args
    if any(isinstance(a, str) and a not in colours for a in args):
        return CANNOT_ANSWER
    index = {c: i for i, c in enumerate(colours)}
    if kind == "count":
        return NUMBER_WORDS[len(colours)] if len(colours) < len(NUMBER_WORDS) else str(len(colours))
    if kind == "largest_colour":
        return max(annotation["objects"], key=lambda o: o["radius"])["color"]
    if kind == "size":
        return size_word(annotation["objects"][index[args[0]]]["radius"] / float(annotation["pixels_per_unit"]))
    if kind == "bounces":
        hit = any(e["type"] == "bounce" and index[args[0]] in e["objects"] for e in events)
        return "yes" if hit else "no"
    if kind == "collisions":
        return str(sum(e["type"] == "collision" for e in events))
    if kind == "gravity":
        return "yes" if math.hypot(*annotation.get("gravity", (0.0, 0.0))) > 0 else "no"
    later = [e for e in events if e["frame"] >= context_frames]
    if kind == "will_collide":
        pair = sorted((index[args[0]], index[args[1]]))
        if pair[0] == pair[1]:
            return CANNOT_ANSWER
        return "yes" if any(e["type"] == "collision" and sorted(e["objects"]) == pair for e in later) else "no"
    if kind == "first_wall":
        bounces = [e for e in later if e["type"] == "bounce" and index[args[0]] in e["objects"]]
        return min(bounces, key=lambda e: e["frame"])["wall"] if bounces else "none"
    if kind == "position":
        frame = int(args[1])
        states = annotation["states"]
        if not context_frames <= frame < len(states):
            return CANNOT_ANSWER
        x, y = states[frame][index[args[0]]][:2]
        return cell(x, y, int(annotation["width"]), int(annotation["height"]))
    return CANNOT_ANSWER


SIZES = ("tiny", "small", "medium", "large", "huge")
MAX_COLLISIONS = 9  # collision counts the answer set holds (train episodes have at most 5)
WALL_ANSWERS = ("left wall", "right wall", "floor", "ceiling", "none")


def answer_set(question: Question) -> tuple[str, ...]:
    """Every answer a template can have (the closed set a model chooses from); questions naming a ball may also
    get :data:`CANNOT_ANSWER` (the clip lacks that ball)."""
    named = (CANNOT_ANSWER,) if question.type not in ("count", "largest_colour", "collisions", "gravity") else ()
    return {
        "count": NUMBER_WORDS[1:],
        "largest_colour": COLOR_NAMES,
        "size": SIZES,
        "collisions": tuple(str(n) for n in range(MAX_COLLISIONS + 1)),
        "first_wall": WALL_ANSWERS,
        "position": tuple(f"{row} {col}" for row in ROWS for col in COLUMNS),
    }.get(question.type, ("yes", "no")) + named


def questions_for(annotation: dict[str, Any], context_frames: int) -> list[tuple[Question, str]]:
    """Every template instance that applies to an episode, with its exact answer (predictive ones from
    ``context_frames``; position asked at the last frame)."""
    colours = [o["color"] for o in annotation["objects"]]
    last = len(annotation["states"]) - 1
    qs = [Question("count"), Question("largest_colour"), Question("collisions"), Question("gravity")]
    qs += [Question(kind, (c,)) for c in colours for kind in ("size", "bounces", "first_wall")]
    qs += [Question("position", (c, last)) for c in colours]
    qs += [Question("will_collide", (a, b)) for i, a in enumerate(colours) for b in colours[i + 1:]]
    return [(q, answer(q, annotation, context_frames if q.predictive else 0)) for q in qs]
