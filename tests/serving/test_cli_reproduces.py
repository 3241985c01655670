"""A server answer is reproducible with the CLI: `--batch-invariant` decodes exactly as the server does."""

import shlex

import numpy as np
from serving_toys import tiny_pipeline

from worldmodel.cli import main
from worldmodel.pipelines import SamplingParams
from worldmodel.serving.batched import BatchedDecoder, ClipRequest
from worldmodel.video import read_video, write_video


def test_generate_and_rollout_with_batch_invariant_equal_the_servers_decoder(tiny_checkpoint, tmp_path):
    decoder = BatchedDecoder(tiny_pipeline())
    request = ClipRequest("a red ball falls", 3, 9, 3.0, SamplingParams(1.0, top_k=5))
    code = main(["generate", "a red ball falls", "--checkpoint", str(tiny_checkpoint), "--seed", "3", "--frames", "9",
                 "--guidance", "3", "--batch-invariant", "-o", str(tmp_path / "t2v.mkv")])
    assert code == 0
    np.testing.assert_array_equal(read_video(tmp_path / "t2v.mkv"), decoder([request])[0])

    context = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "in.mkv", context)
    code = main(["rollout", str(tmp_path / "in.mkv"), "--context-frames", "5", "--checkpoint", str(tiny_checkpoint),
                 "--seed", "4", "--frames", "9", "--batch-invariant", "-o", str(tmp_path / "roll.mkv")])
    assert code == 0
    expected = decoder([ClipRequest("", 4, 9, 1.0, SamplingParams(0.0), context)])[0]
    np.testing.assert_array_equal(read_video(tmp_path / "roll.mkv"), expected)


def test_the_answer_names_a_batch_invariant_command(service):
    request = ClipRequest("a red ball falls", 3, 9, 3.0, SamplingParams(1.0, top_k=5))
    args = shlex.split(service._command(request))
    assert args[:3] == ["worldmodel", "generate", "a red ball falls"] and "--batch-invariant" in args
    assert args[args.index("--seed") + 1] == "3" and args[args.index("--top-k") + 1] == "5"
