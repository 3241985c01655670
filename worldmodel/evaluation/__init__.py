"""worldmodel.evaluation: FVD with the Kinetics I3D, a colour tracker, physics consistency, baselines, reports.

Names are imported lazily so that ``worldmodel --help`` stays fast (no torch import for the CLI).
"""

from __future__ import annotations

from worldmodel.lazy import lazy_getattr

_EXPORTS = {
    "frechet_video_distance": "worldmodel.evaluation.fvd",
    "video_distances": "worldmodel.evaluation.fvd",
    "frechet_distance": "worldmodel.evaluation.fvd",
    "kernel_distance": "worldmodel.evaluation.fvd",
    "i3d_features": "worldmodel.evaluation.fvd",
    "fetch_i3d": "worldmodel.evaluation.i3d_weights",
    "load_i3d": "worldmodel.evaluation.i3d_weights",
    "track_objects": "worldmodel.evaluation.tracking",
    "track_episode": "worldmodel.evaluation.tracking",
    "episode_metrics": "worldmodel.evaluation.physics",
    "tracker_floor": "worldmodel.evaluation.physics",
    "physics_checks": "worldmodel.evaluation.checks",
    "baseline_rollout": "worldmodel.evaluation.baselines",
    "evaluate_physics": "worldmodel.evaluation.report",
    "text_adherence": "worldmodel.evaluation.text_adherence",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
