"""Descriptions and template questions against simulator annotations: exact answers, round trips, parsing."""

from __future__ import annotations

import copy

import pytest

from worldmodel.datasets.scenarios import SCENARIOS
from worldmodel.datasets.simulator import simulate
from worldmodel.understanding import (
    CANNOT_ANSWER,
    Question,
    answer,
    attribute_accuracy,
    describe,
    from_annotation,
    parse_description,
    parse_question,
    questions_for,
)
from worldmodel.understanding.descriptions import MAX_DESCRIPTION_BYTES
from worldmodel.understanding.questions import render_question


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_description_round_trips_and_fits(scenario: str) -> None:
    for seed in range(6):
        annotation = simulate(scenario, "test_id", seed).annotation
        text = describe(annotation)
        assert len(text.encode("utf-8")) <= MAX_DESCRIPTION_BYTES
        parsed = parse_description(text)
        truth = from_annotation(annotation)
        scores = attribute_accuracy(parsed, truth)
        assert all(v for k, v in scores.items() if k != "events"), text
        # events are dropped from the end only when the line would exceed the byte limit
        assert parsed.events == truth.events[: len(parsed.events)]
        assert scores["events"] or len(text.encode("utf-8")) > MAX_DESCRIPTION_BYTES - 40


def test_description_attributes_fail_one_by_one() -> None:
    annotation = simulate("collision", "test_id", 1).annotation
    truth = from_annotation(annotation)
    text = describe(annotation)
    first_colour = truth.balls[0][1]
    other = "white" if first_colour != "white" else "red"
    wrong_colour = parse_description(text.replace(first_colour, other))
    assert attribute_accuracy(wrong_colour, truth)["colours"] is False
    no_events = parse_description(text.split("events:")[0] + "events: none.")
    assert attribute_accuracy(no_events, truth)["events"] is (not truth.events)
    garbage = parse_description("\x00\x01 balls balls ... ")
    assert not any(attribute_accuracy(garbage, truth).values()) or not truth.balls


def test_answers_are_read_from_the_annotation() -> None:
    annotation = simulate("multi", "test_id", 3).annotation  # purple, green, blue, orange; 5 collisions
    colours = [o["color"] for o in annotation["objects"]]
    assert answer(Question("count"), annotation) == "four"
    assert answer(Question("largest_colour"), annotation) == "blue"
    assert answer(Question("collisions"), annotation) == "5"
    assert answer(Question("gravity"), annotation) == "yes"
    assert answer(Question("bounces", ("orange",)), annotation) == "yes"
    assert answer(Question("bounces", ("green",)), annotation) == "no"
    assert answer(Question("first_wall", ("blue",)), annotation, context_frames=5) == "floor"
    assert answer(Question("first_wall", ("blue",)), annotation, context_frames=10) == "none"
    assert answer(Question("will_collide", ("purple", "orange")), annotation, context_frames=13) == "yes"
    assert answer(Question("will_collide", ("purple", "orange")), annotation, context_frames=15) == "no"
    assert answer(Question("size", ("red",)), annotation) == CANNOT_ANSWER  # no red ball here
    x, y = annotation["states"][16][colours.index("green")][:2]
    cell = answer(Question("position", ("green", 16)), annotation, context_frames=5)
    assert cell.split()[0] == ("top", "middle", "bottom")[min(2, int(3 * (y + 0.5) / 64))]
    assert answer(Question("position", ("green", 99)), annotation, context_frames=5) == CANNOT_ANSWER


def test_questions_parse_from_free_text_and_round_trip() -> None:
    assert parse_question("How many balls are there?") == Question("count")
    assert parse_question("Which color is the biggest ball") == Question("largest_colour")
    assert parse_question("will the red and the blue balls collide?") == Question("will_collide", ("red", "blue"))
    assert parse_question("Where will the cyan ball be at frame 12?") == Question("position", ("cyan", 12))
    assert parse_question("what is the meaning of life?") is None
    annotation = simulate("collision", "test_id", 0).annotation
    for question, truth in questions_for(annotation, context_frames=5):
        assert parse_question(render_question(question)) == question
        assert truth != CANNOT_ANSWER


def test_predictive_answers_ignore_events_inside_the_context() -> None:
    annotation = copy.deepcopy(simulate("collision", "test_id", 0).annotation)
    a, b = (o["color"] for o in annotation["objects"])
    annotation["events"] = [{"frame": 2, "type": "collision", "objects": [0, 1]}]
    assert answer(Question("will_collide", (a, b)), annotation, context_frames=0) == "yes"
    assert answer(Question("will_collide", (a, b)), annotation, context_frames=5) == "no"
