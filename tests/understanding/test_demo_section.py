"""The demo page's describe-and-ask section: each held-out episode gets a description and two answers."""

from worldmodel.datasets.storage import generate_dataset
from worldmodel.demo import _understanding_summary, describe_and_ask
from worldmodel.pipelines import TextToVideoPipeline
from worldmodel.understanding.questions import answer_set, parse_question


def test_every_episode_gets_a_description_and_two_answers_beside_the_truth(text_checkpoint, tmp_path):
    data = tmp_path / "data"
    generate_dataset(data, episodes=2, seed=0, split="test_id", scenarios=["collision", "uniform"], frames=9, size=32)
    rows = describe_and_ask(TextToVideoPipeline.from_checkpoint(text_checkpoint), data)
    assert len(rows) == 2
    for row in rows:
        assert row["description"].isascii() and row["true_description"].startswith("balls:")
        assert len(row["answers"]) == 2
        for qa in row["answers"]:
            assert qa["answer"] in answer_set(parse_question(qa["question"]))
    page = _understanding_summary(rows)
    assert "## Describe and ask" in page and all(row["id"] in page for row in rows)
    assert _understanding_summary([]) == ""
