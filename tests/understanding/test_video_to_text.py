"""VideoToTextPipeline and `worldmodel describe / ask`: closed answers, valid text, video fitting, clear errors."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.cli import main
from worldmodel.datasets import simulate
from worldmodel.model import WorldModel
from worldmodel.pipelines import VideoToTextPipeline
from worldmodel.pipelines.base import DEFAULT_CHECKPOINT
from worldmodel.understanding import CANNOT_ANSWER, parse_question
from worldmodel.understanding.questions import answer_set
from worldmodel.video import write_video

QUESTIONS = ["how many balls are there?", "what colour is the largest ball?", "what size is the red ball?",
             "does the blue ball bounce off a wall?", "how many collisions are there?", "is there gravity?",
             "will the red and blue balls collide?", "which wall will the green ball hit first?",
             "where will the red ball be at frame 8?"]


@pytest.fixture(scope="module")
def pipe(text_checkpoint):
    return VideoToTextPipeline.from_checkpoint(text_checkpoint)


@pytest.fixture(scope="module")
def episode_file(tmp_path_factory):
    episode = simulate("collision", "test_id", 2, frames=9, size=32)
    return write_video(tmp_path_factory.mktemp("video") / "ep.mkv", episode.frames)


def test_answers_are_always_in_the_templates_answer_set(pipe):
    for seed in range(3):
        frames = simulate("multi", "test_id", seed, frames=9, size=32).frames
        for question in QUESTIONS:
            out = pipe.ask(frames, question, context_frames=5 if parse_question(question).predictive else None)
            assert out.text in answer_set(parse_question(question)), (question, out.text)
            assert out.template == parse_question(question).type and out.frames == (5 if "will" in question else 9)


def test_off_template_questions_get_cannot_answer(pipe, episode_file):
    out = pipe.ask(episode_file, "what is the meaning of life?")
    assert out.text == CANNOT_ANSWER and out.template is None
    assert "matches none of the question templates" in out.notes[0]


def test_descriptions_are_printable_ascii_within_the_byte_limit_and_seedless(pipe, episode_file):
    first, again = pipe.describe(episode_file), pipe(str(episode_file))
    assert first.text == again.text
    assert len(first.text) <= pipe.world_model.config.max_answer_len
    assert all(32 <= b < 127 for b in first.text.encode("ascii"))


def test_greedy_description_equals_the_argmax_of_the_full_forward(pipe, episode_file):
    """The KV-cached greedy decoding reproduces, step by step, the argmax of a full forward over its own output."""
    from worldmodel.model.text_output import understanding_batch

    out = pipe.describe(episode_file)
    text, finished = out.text.encode("ascii"), not out.notes  # unfinished: stopped at the byte limit, no EOS
    frames, _ = pipe.prepare_video(str(episode_file))
    codes = pipe._codes(frames)
    model = pipe.world_model
    ids, start, targets = understanding_batch([codes], [text], model.vocab)
    context = pipe._text_context(model, ["describe the video"], 1.0)
    with torch.no_grad():
        logits = model(ids, context, text_start=start).text_logits[0]  # (L, 257)
    allowed = torch.full((257,), float("-inf"))
    allowed[list(range(32, 127)) + [256]] = 0
    rows = torch.nonzero(targets[0] != -100)[:, 0]
    rows = rows if finished else rows[:-1]  # the EOS target only when greedy decoding ended with it
    assert len(rows) >= len(text) and torch.equal((logits[rows] + allowed).argmax(-1), targets[0, rows])


def test_other_sizes_and_lengths_are_fitted_with_a_note(pipe):
    big = simulate("bounce", "test_id", 0, frames=23, size=48).frames  # 23 frames of 48x48
    out = pipe.describe(big)
    assert out.frames == 9 and any("resized the 48x48" in n for n in out.notes)
    assert any("kept the first 9 of the video's 23 frames" in n for n in out.notes)
    wide = np.zeros((7, 24, 40, 3), dtype=np.uint8)
    frames, notes = pipe.prepare_video(wide)
    assert frames.shape == (5, 32, 32, 3) and len(notes) == 2


@pytest.mark.parametrize(("video", "kwargs", "match"), [
    (np.zeros((9, 32, 32), dtype=np.uint8), {}, "uint8 frames"),
    (np.zeros((9, 32, 32, 3), dtype=np.float32), {}, "uint8 frames"),
    (np.zeros((2, 9, 32, 32, 3), dtype=np.uint8), {}, "one video at a time"),
    (np.zeros((9, 32, 32, 3), dtype=np.uint8), {"context_frames": 4}, "context_frames must be 1 \\+ 4 \\* k"),
    (np.zeros((9, 32, 32, 3), dtype=np.uint8), {"context_frames": 13}, "at most the 9 frames"),
    (np.zeros((9, 32, 32, 3), dtype=np.uint8), {"question": "  "}, "the question is empty"),
    ("NOWHERE.mkv", {}, "no such video file"),
])
def test_bad_input_is_refused_with_one_sentence(pipe, video, kwargs, match):
    question = kwargs.pop("question", "how many balls are there?")
    with pytest.raises(ValueError, match=match):
        pipe.ask(video, question, **kwargs)


def test_a_corrupt_file_is_refused(pipe, tmp_path):
    broken = tmp_path / "broken.mkv"
    broken.write_bytes(b"not a video at all" * 50)
    with pytest.raises(ValueError, match="could not be decoded as a video"):
        pipe.describe(broken)


def test_a_checkpoint_without_text_output_says_so(tiny_tokenizer):
    from conftest import TINY_TEXT_WORLD

    world = WorldModel(**{**TINY_TEXT_WORLD, "text_output": False, "max_answer_len": 0})
    pipe = VideoToTextPipeline(tokenizer=tiny_tokenizer, world_model=world)
    with pytest.raises(ValueError, match="trained without video understanding"):
        pipe.describe(np.zeros((9, 32, 32, 3), dtype=np.uint8))


def test_cli_describe_and_ask_print_text_and_json(text_checkpoint, episode_file, capsys):
    assert main(["describe", str(episode_file), "--checkpoint", str(text_checkpoint)]) == 0
    description = capsys.readouterr().out.removesuffix("\n")
    assert description == VideoToTextPipeline.from_checkpoint(text_checkpoint).describe(episode_file).text
    assert main(["ask", str(episode_file), "will the red and blue balls collide?", "--context-frames", "5",
                 "--checkpoint", str(text_checkpoint), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["text"] in ("yes", "no", CANNOT_ANSWER) and record["context_frames"] == 5
    assert record["template"] == "will_collide" and record["frames_read"] == 5


@pytest.mark.parametrize(("args", "match"), [
    (["describe", "{video}"], "trained without video understanding"),  # the packaged default
    (["ask", "{video}", "is there gravity?", "--checkpoint", "NOWHERE"], "NOWHERE does not exist"),
    (["ask", "{video}", "", "--checkpoint", "{ckpt}"], "the question is empty"),
    (["ask", "{video}", "is there gravity?", "--context-frames", "3", "--checkpoint", "{ckpt}"], "1 \\+ 4 \\* k"),
    (["describe", "missing.mkv", "--checkpoint", "{ckpt}"], "missing.mkv: no such video file"),
])
def test_cli_errors_are_one_line(text_checkpoint, episode_file, capsys, args, match):
    assert (DEFAULT_CHECKPOINT / "model_index.json").is_file()
    argv = [a.format(video=episode_file, ckpt=text_checkpoint) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(match, err), err


def test_answer_sets_hold_every_true_answer():
    from worldmodel.datasets.scenarios import SCENARIOS
    from worldmodel.understanding import questions_for

    for split in ("train", "test_id", "test_ood"):
        for seed in range(10):
            annotation = simulate(SCENARIOS[seed % len(SCENARIOS)], split, seed).annotation
            for question, reply in questions_for(annotation, context_frames=5):
                assert reply in answer_set(question), (question, reply)


def test_understanding_benchmark_writes_result_rows_with_goals_on_test_id(text_checkpoint, tmp_path, monkeypatch):
    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("understanding_benchmark", bench / "understanding.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "understanding.json"
    assert module.main(["--checkpoint", str(text_checkpoint), "--episodes", "2", "--threads", "1",
                        "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["threads"] == 1 and payload["machine"] and payload["commit"]
    rows = {r["name"]: r for r in payload["results"]}
    for row in rows.values():
        assert set(row) >= {"name", "value", "unit", "goal", "higher_is_better", "commit", "command"}
    assert rows["test_id_question_count"]["goal"] == 0.95 and rows["test_ood_question_count"]["goal"] is None
    margins = [name for name in rows if name.startswith("test_id_") and name.endswith("_over_majority")]
    assert margins  # at least one predictive question type was asked
    for name in margins:
        question = name.removesuffix("_over_majority")
        kind = question.removeprefix("test_id_question_")
        assert rows[question]["goal"] == 0.85 and rows[name]["goal"] == 0.25
        assert rows[name]["value"] == pytest.approx(rows[question]["value"] - rows[f"test_id_majority_{kind}"]["value"],
                                                    abs=1e-3)
    assert 0.0 <= rows["test_id_description_count"]["value"] <= 1.0


def test_understanding_benchmark_workers_score_the_splits_as_one_process_does(text_checkpoint, tmp_path, monkeypatch):
    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))  # spawned workers import the script by this name from sys.path
    spec = importlib.util.spec_from_file_location("understanding", bench / "understanding.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "understanding", module)
    spec.loader.exec_module(module)
    figures = []
    for workers in ("1", "2"):
        out = tmp_path / f"understanding-{workers}.json"
        assert module.main(["--checkpoint", str(text_checkpoint), "--episodes", "1", "--threads", "1",
                            "--workers", workers, "--out", str(out)]) == 0
        splits = json.loads(out.read_text())["splits"]
        figures.append([{k: v for k, v in row.items() if k != "seconds"} for row in splits])
    assert figures[0] == figures[1] and [row["split"] for row in figures[1]] == ["test_id", "test_ood"]


def test_imagine_one_future_reads_the_greedy_rollout(pipe):
    """ask(imagine=1) answers as the model does when shown the greedy rollout of the context as the clip."""
    from worldmodel.pipelines import PhysicsRolloutPipeline
    from worldmodel.understanding.questions import render_question

    frames = simulate("collision", "test_id", 5, frames=9, size=32).frames
    rollout = PhysicsRolloutPipeline(tokenizer=pipe.tokenizer, world_model=pipe.world_model)
    rollout.set_progress_bar_config(disable=True)
    codes = rollout(frames[:5], num_frames=9, output_type="latent").frames  # (1, 3, 4, 4), greedy
    for question in QUESTIONS[6:]:
        out = pipe.ask(frames, question, context_frames=5, imagine=1)
        parsed = parse_question(question)
        expected = pipe._choose(codes.reshape(1, -1), render_question(parsed), answer_set(parsed))
        assert out.text == expected and out.frames == 5
        assert out.notes == ["answered from 1 imagined continuation of the 5 frames to 9"]


def test_imagined_futures_are_seeded_reused_and_averaged(pipe, monkeypatch):
    frames = simulate("multi", "test_id", 1, frames=9, size=32).frames
    first = [pipe.ask(frames, q, context_frames=5, imagine=3, seed=7).text for q in QUESTIONS[6:]]
    calls = []
    monkeypatch.setattr(pipe, "_sample_codes", lambda *a, **k: calls.append(a) or pytest.fail("not reused"))
    assert [pipe.ask(frames, q, context_frames=5, imagine=3, seed=7).text for q in QUESTIONS[6:]] == first
    monkeypatch.undo()
    assert not calls and pipe._futures[1].shape == (3, 3 * 4 * 4)
    codes = pipe._codes(frames)[None]  # (1, 48): the clip itself
    prompt, candidates = "is there gravity?", ("yes", "no")
    assert pipe._choose(codes.expand(4, -1), prompt, candidates) == pipe._choose(codes, prompt, candidates)
    described = pipe.ask(frames, "how many balls are there?", imagine=2)  # not predictive: nothing imagined
    assert described.notes == [] and described.frames == 9


@pytest.mark.parametrize("imagine", [-1, 17, 1.5, True])
def test_bad_imagine_is_refused(pipe, imagine):
    with pytest.raises(ValueError, match="imagine must be a whole number of futures"):
        pipe.ask(np.zeros((9, 32, 32, 3), dtype=np.uint8), "is there gravity?", context_frames=5, imagine=imagine)


def test_cli_ask_imagine_prints_the_answer_with_its_settings(text_checkpoint, episode_file, capsys):
    assert main(["ask", str(episode_file), "which wall will the red ball hit first?", "--context-frames", "5",
                 "--imagine", "2", "--seed", "3", "--checkpoint", str(text_checkpoint), "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["imagine"] == 2 and record["seed"] == 3 and record["frames_read"] == 5
    assert record["notes"] == ["answered from 2 imagined continuations of the 5 frames to 9"]
    pipe = VideoToTextPipeline.from_checkpoint(text_checkpoint)
    assert record["text"] == pipe.ask(episode_file, "which wall will the red ball hit first?", 5, 2, 3).text


def test_a_model_with_answer_pauses_describes_and_answers_through_them(pipe, episode_file):
    """With answer_pauses the greedy description is still the argmax of a full forward over the paused layout."""
    from conftest import TINY_TEXT_WORLD

    from worldmodel.model.text_output import understanding_batch

    torch.manual_seed(1)
    world = WorldModel(**{**TINY_TEXT_WORLD, "answer_pauses": 3, "max_answer_len": 24}).eval()
    paused = VideoToTextPipeline(tokenizer=pipe.tokenizer, world_model=world)
    out = paused.describe(episode_file)
    text, finished = out.text.encode("ascii"), not out.notes
    codes = paused._codes(paused.prepare_video(str(episode_file))[0])
    ids, start, targets = understanding_batch([codes], [text], world.vocab, pauses=3)
    with torch.no_grad():
        logits = world(ids, paused._text_context(world, ["describe the video"], 1.0), text_start=start).text_logits[0]
    allowed = torch.full((257,), float("-inf"))
    allowed[list(range(32, 127)) + [256]] = 0
    rows = torch.nonzero(targets[0] != -100)[:, 0]
    rows = rows if finished else rows[:-1]
    assert rows[0] == start[0] + 3 and torch.equal((logits[rows] + allowed).argmax(-1), targets[0, rows])
    for question in QUESTIONS:
        parsed = parse_question(question)
        answer = paused.ask(episode_file, question, context_frames=5 if parsed.predictive else None).text
        assert answer in answer_set(parsed)
