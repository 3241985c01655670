"""Physics reports: score a folder of predicted videos against a dataset folder, write JSON, Markdown, plots, GIFs.

Predicted videos (any container PyAV reads) are matched to reference episodes by file stem = episode
id. A file that cannot be read or compared (unreadable, too few frames, wrong size) is reported with a warning
and counts as a failed episode: score 0 and permanence broken, so a bad file can never raise the figures; it
never stops the run. ``REPORT_DIR/report.json`` holds the top-level ``score`` (mean episode score over the
scored and the failed files, see :mod:`worldmodel.evaluation.physics`), the tracker floor, means per scenario
and every episode's figures.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.evaluation.permanence import permanence
from worldmodel.evaluation.physics import episode_metrics, tracker_floor
from worldmodel.evaluation.tracking import track_episode
from worldmodel.io import atomic_path, write_json_atomic, write_text_atomic
from worldmodel.video import VIDEO_SUFFIXES, VideoReadError, read_video, side_by_side, write_gif

SUMMARY_KEYS = ("score", "coverage", "identity", "ade", "fde", "velocity_error", "velocity_error_before",
                "velocity_error_after", "shape_error", "timing_error_s", "iou")


def _mean_of(episodes: list[dict[str, Any]], key: str, source: str = "metrics") -> float | None:
    values = [e[source][key] for e in episodes if e[source].get(key) is not None]
    return float(np.mean(values)) if values else None


def permanence_summary(episodes: list[dict[str, Any]], failed_videos: int = 0) -> dict[str, Any]:
    """Share of checked frames and of videos whose balls are exactly the true balls; ``failed_videos`` (unreadable
    predictions) count as failed videos."""
    checked = sum(e["permanence"]["frames_checked"] for e in episodes)
    passed = sum(e["permanence"]["frames_passed"] for e in episodes)
    verdicts = [e["permanence"]["video_passed"] for e in episodes if e["permanence"]["video_passed"] is not None]
    videos = len(verdicts) + failed_videos
    return {"frame_permanence": passed / checked if checked else None,
            "video_permanence": sum(verdicts) / videos if videos else None,
            "frames_checked": checked, "videos_checked": videos}


def summarize(episodes: list[dict[str, Any]], failed_videos: int = 0) -> dict[str, Any]:
    """Means of the episode figures (overall and per scenario), permanence and the tracker floor."""
    summary = {key: _mean_of(episodes, key) for key in SUMMARY_KEYS}
    summary["permanence"] = permanence_summary(episodes, failed_videos)
    summary["tracker_floor"] = {key: _mean_of(episodes, key, "tracker_floor")
                                for key in ("center_px", "velocity", "radius_px")}
    scenarios = sorted({e["scenario"] for e in episodes})
    summary["per_scenario"] = {
        s: {**{key: _mean_of([e for e in episodes if e["scenario"] == s], key) for key in SUMMARY_KEYS},
            **permanence_summary([e for e in episodes if e["scenario"] == s])}
        for s in scenarios
    }
    return summary


def _plot_episode(path: Path, ident: str, metrics: dict[str, Any], context_frames: int) -> None:
    """Trajectories (predicted dashed, simulated solid) and the centre error over time, as one PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4))
    ax_traj, ax_err = fig.subplots(1, 2)
    pred = np.array(metrics["trajectory"]["predicted"], dtype=np.float64)  # (T, N, 2), NaN where absent
    ref = np.array(metrics["trajectory"]["reference"], dtype=np.float64)
    for k in range(ref.shape[1]):
        line = ax_traj.plot(ref[:, k, 0], ref[:, k, 1], "-", label=f"object {k} simulated")[0]
        ax_traj.plot(pred[:, k, 0], pred[:, k, 1], "--", color=line.get_color(), label=f"object {k} predicted")
    ax_traj.invert_yaxis()
    ax_traj.set(title=f"{ident}: trajectories", xlabel="x (px)", ylabel="y (px)")
    ax_traj.legend(fontsize=6)
    err = np.array([np.nan if e is None else e for e in metrics["error_over_time"]], dtype=np.float64)
    ax_err.plot(np.arange(len(err)), err, "o-")
    ax_err.axvline(context_frames - 0.5, color="gray", linestyle=":", label="end of context")
    ax_err.set(title="centre error / frame width", xlabel="frame", ylabel="error", xlim=(-0.5, len(err) - 0.5))
    ax_err.legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)


def _markdown(report: dict[str, Any], shown: list[dict[str, Any]]) -> str:
    """The human-readable report."""
    s, floor = report["summary"], report["summary"]["tracker_floor"]
    floor_ade = floor["center_px"] / report["width"] if floor["center_px"] is not None else None

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    lines = [
        "# Physics consistency report", "",
        f"Predictions: `{report['pred_dir']}`; reference: `{report['reference_dir']}`; "
        f"context frames: {report['context_frames']}.",
        f"Episodes scored: {report['counts']['scored']}, missing predictions: {report['counts']['missing']}, "
        f"unreadable or mismatched files: {report['counts']['bad']}, unmatched files: {report['counts']['unmatched']}.",
        "", f"**Score: {fmt(report['score'])}** (mean episode score in [0, 1]; the simulator's own render ~1).",
        f"**Object permanence: {fmt(s['permanence']['frame_permanence'])} of {s['permanence']['frames_checked']} "
        f"checked frames, {fmt(s['permanence']['video_permanence'])} of {s['permanence']['videos_checked']} videos** "
        "(balls seen by colour = the true balls; frames where balls touch or leave the picture not checked).", "",
        "| figure | value | tracker floor |", "|---|---|---|",
        f"| ADE (frame widths) | {fmt(s['ade'])} | {fmt(floor_ade)} |",
        f"| FDE (frame widths) | {fmt(s['fde'])} | |",
        f"| velocity error (units/s) | {fmt(s['velocity_error'])} | {fmt(floor['velocity'])} |",
        f"| velocity error before / after collision | {fmt(s['velocity_error_before'])} / "
        f"{fmt(s['velocity_error_after'])} | |",
        f"| shape error (relative radius) | {fmt(s['shape_error'])} | "
        f"{fmt(floor['radius_px'])} px |",
        f"| coverage | {fmt(s['coverage'])} | |", f"| identity persistence | {fmt(s['identity'])} | |",
        f"| collision timing error (s) | {fmt(s['timing_error_s'])} | |", f"| spatiotemporal IoU | {fmt(s['iou'])} | |",
        "", "## Per scenario", "",
        "| scenario | score | permanence (frames) | permanence (videos) | ADE | velocity error |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {fmt(v['score'])} | {fmt(v['frame_permanence'])} | {fmt(v['video_permanence'])} | "
              f"{fmt(v['ade'])} | {fmt(v['velocity_error'])} |" for name, v in s["per_scenario"].items()]
    lines += ["", "## Episodes (left: predicted, right: simulator)", ""]
    for e in shown:
        lines += [f"### {e['id']} ({e['scenario']}): score {fmt(e['metrics']['score'])}", "",
                  f"![{e['id']}]({e['gif']})", "", f"![{e['id']} plots]({e['plot']})", ""]
    return "\n".join(lines) + "\n"


def _predicted_files(pred_dir: Path) -> dict[str, Path]:
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: no such folder of predicted videos")
    return {p.stem: p for p in sorted(pred_dir.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()}


def evaluate_physics(pred_dir: str | os.PathLike, reference_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     context_frames: int = 5, examples: int = 4) -> dict[str, Any]:
    """Score every predicted video against its reference episode; write ``report.json`` and ``report.md``.

    Args:
        pred_dir: folder of predicted videos named ``<episode id>.<ext>``.
        reference_dir: dataset folder (``manifest.jsonl``) made by ``worldmodel data generate``.
        out_dir: report folder (created).
        context_frames: frames the model was given (not scored).
        examples: episodes shown with plots and side-by-side GIFs.

    Returns:
        The report dict (as written to ``report.json``).
    """
    from worldmodel.datasets.storage import read_manifest

    pred_dir, reference_dir, out_dir = Path(pred_dir), Path(reference_dir), Path(out_dir)
    records = read_manifest(reference_dir)
    predicted = _predicted_files(pred_dir)
    known = {r["id"] for r in records}
    episodes, bad, missing = [], [], 0
    for record in records:
        path = predicted.get(record["id"])
        if path is None:
            missing += 1
            continue
        try:
            pred = read_video(path)
            annotation = json.loads((reference_dir / record["annotation"]).read_text(encoding="utf-8"))
            reference = read_video(reference_dir / record["video"])
            ref_tracks = track_episode(reference, annotation)
            metrics = episode_metrics(pred, annotation, reference, context_frames, ref_tracks)
            kept = permanence(pred[: len(reference)], annotation, start_frame=context_frames).as_dict()
        except (VideoReadError, ValueError, KeyError, OSError) as err:
            warnings.warn(f"skipping {path.name}: {err}", stacklevel=2)
            bad.append({"file": path.name, "error": str(err)})
            continue
        episodes.append({"id": record["id"], "scenario": annotation.get("scenario", "unknown"), "metrics": metrics,
                         "permanence": kept,
                         "tracker_floor": tracker_floor(reference, annotation, ref_tracks),
                         "_videos": (pred[: len(reference)], reference, float(annotation["fps"]))
                         if len(episodes) < examples else None})
    if not episodes:
        raise ValueError(f"no predicted video in {pred_dir} could be scored against {reference_dir} "
                         f"({len(predicted)} video files, {missing} episodes without a prediction, {len(bad)} bad)")
    shown = []
    for e in episodes:
        videos = e.pop("_videos")
        if videos is not None:
            e["gif"], e["plot"] = f"episodes/{e['id']}.gif", f"episodes/{e['id']}.png"
            write_gif(out_dir / e["gif"], side_by_side(videos[0], videos[1]), fps=videos[2], scale=3)
            _plot_episode(out_dir / e["plot"], e["id"], e["metrics"], context_frames)
            shown.append(e)
    summary = summarize(episodes, failed_videos=len(bad))
    report = {
        "score": sum(e["metrics"]["score"] for e in episodes) / (len(episodes) + len(bad)),
        "permanence": summary["permanence"], "context_frames": context_frames,
        "pred_dir": str(pred_dir),
        "reference_dir": str(reference_dir), "width": int(records[0]["width"]),
        "counts": {"scored": len(episodes), "missing": missing, "bad": len(bad),
                   "unmatched": len(set(predicted) - known)},
        "tracker_floor": summary["tracker_floor"], "summary": summary, "bad_files": bad, "episodes": episodes,
    }
    write_json_atomic(out_dir / "report.json", report)
    write_text_atomic(out_dir / "report.md", _markdown(report, shown))
    return report
