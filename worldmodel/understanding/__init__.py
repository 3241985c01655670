"""Video understanding targets: descriptions and template questions answered exactly by the simulator."""

from worldmodel.understanding.descriptions import (
    Description,
    attribute_accuracy,
    describe,
    from_annotation,
    parse_description,
    target_description,
)
from worldmodel.understanding.questions import CANNOT_ANSWER, Question, answer, parse_question, questions_for

__all__ = ["CANNOT_ANSWER", "Description", "Question", "answer", "attribute_accuracy", "describe", "from_annotation",
           "parse_description", "parse_question", "questions_for", "target_description"]
