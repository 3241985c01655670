"""End to end: `worldmodel evaluate baseline/physics` on a tiny dataset; bad files are skipped and counted."""

import json
import shutil

import pytest

from worldmodel.cli import main
from worldmodel.datasets.storage import generate_dataset, read_manifest
from worldmodel.evaluation.report import evaluate_physics


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    generate_dataset(root, episodes=5, seed=0, split="test_id", scenarios=["parabola", "collision", "bounce"])
    return root


def test_ground_truth_report_with_a_bad_and_a_missing_file(dataset, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    records = read_manifest(dataset)
    for r in records[:3]:
        shutil.copy(dataset / r["video"], pred / f"{r['id']}.mkv")
    (pred / f"{records[3]['id']}.mp4").write_bytes(b"not a video")
    with pytest.warns(UserWarning, match="skipping"):
        report = evaluate_physics(pred, dataset, tmp_path / "report", context_frames=5, examples=2)
    assert 0.98 * 3 / 4 <= report["score"] <= 3 / 4  # the unreadable file counts as a failed episode
    assert report["counts"] == {"scored": 3, "missing": 1, "bad": 1, "unmatched": 0}
    assert report["permanence"]["frame_permanence"] == 1.0 and report["permanence"]["video_permanence"] == 3 / 4
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["score"] == report["score"] and len(saved["episodes"]) == 3
    assert saved["tracker_floor"]["center_px"] < 0.05
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Score" in md and "tracker floor" in md
    shown = [e for e in saved["episodes"] if "gif" in e]
    assert len(shown) == 2 and all((tmp_path / "report" / e["gif"]).stat().st_size > 0 for e in shown)


@pytest.mark.slow
def test_cli_baseline_then_physics_scores_lower(dataset, tmp_path, capsys):
    assert main(["evaluate", "baseline", "--kind", "copy_last", "--reference", str(dataset),
                 "-o", str(tmp_path / "pred")]) == 0
    assert main(["evaluate", "physics", "--pred", str(tmp_path / "pred"), "--reference", str(dataset),
                 "-o", str(tmp_path / "rep"), "--examples", "0"]) == 0
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["counts"]["scored"] == 5 and report["score"] < 0.8
    assert "score" in capsys.readouterr().out


def test_cli_reports_an_empty_prediction_folder_in_one_line(dataset, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "physics", "--pred", str(tmp_path / "empty"), "--reference", str(dataset),
                 "-o", str(tmp_path / "rep")]) == 2
    assert "no predicted video" in capsys.readouterr().err
