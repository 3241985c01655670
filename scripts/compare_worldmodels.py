"""Equal-compute comparison of world-model designs over the small tokenizer's codes.

Every candidate is ``configs/worldmodel-small.yaml`` with a few lines of its text replaced, its own output folder
``outputs/worldmodel-designs/NAME`` and the same wall-time cap; its step count is the cap divided by the step time
measured on the project's box (one thread), so that each cosine schedule ends inside the cap. After training, the
candidate's world model and ``stages/small/tokenizer`` are assembled into a pipeline folder
``outputs/worldmodel-designs/NAME/pipeline`` for scoring:

    python benchmarks/default_model.py --checkpoint outputs/worldmodel-designs/NAME/pipeline --episodes 20 \\
        --prompts 20 --fvd-clips 0 --long-frames --threads 1 --out outputs/worldmodel-designs/NAME/default_model.json
    python benchmarks/understanding.py --checkpoint outputs/worldmodel-designs/NAME/pipeline --episodes 20 \\
        --threads 1 --out outputs/worldmodel-designs/NAME/understanding.json

Two candidates can run at once on a 2-core box when each is pinned to its own core with one thread
(``taskset -c 0 env OMP_NUM_THREADS=1 python scripts/compare_worldmodels.py --only NAME``).

    python scripts/compare_worldmodels.py --only l3-d192-joint --minutes 18
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from worldmodel.io import write_text_atomic

TRUNK = "      d_model: 192\n      n_layers: 3\n"
WIDTHS = "      dense_hidden: 512\n"
EXPERTS = "      moe_expert_hidden: 128\n"
# name -> (seconds per step measured at batch 16 on one thread of the 2-core box, {config text: replacement})
CANDIDATES: dict[str, tuple[float, dict[str, str]]] = {
    # the shipped tiny trunk (3 layers of width 192) with the byte head; a quarter of each batch describes / answers
    "l3-d192-joint": (3.6, {}),
    # depth over width at about the same parameter count: 6 layers of width 128
    "l6-d128-joint": (4.4, {TRUNK: "      d_model: 128\n      n_layers: 6\n", WIDTHS: "      dense_hidden: 352\n",
                            EXPERTS: "      moe_expert_hidden: 96\n"}),
    # video only (what understanding costs the video side): no byte head, every row trains generation
    "l3-d192-video": (3.5, {"      text_output: true": "      text_output: false",
                            "    understanding_share: 0.25": "    understanding_share: 0.0",
                            "    understanding: true": "    understanding: false"}),
}


def candidate_config(name: str, config: Path) -> Path:
    """Write candidate ``name``'s config (``config`` with its replacements, every ``outputs/worldmodel-small`` path
    moved to ``outputs/worldmodel-designs/NAME``) and return its path."""
    root = Path("outputs/worldmodel-designs") / name
    root.mkdir(parents=True, exist_ok=True)
    text = config.read_text().replace("outputs/worldmodel-small", str(root))
    for old, new in CANDIDATES[name][1].items():
        if old not in text:
            raise ValueError(f"{config}: candidate {name} replaces {old.strip()!r}, which the config no longer holds")
        text = text.replace(old, new, 1)
    write_text_atomic(root / "config.yaml", text)
    return root / "config.yaml"


def main(argv: list[str] | None = None) -> int:
    """Train the chosen candidates one after another and assemble each one's pipeline folder."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(CANDIDATES), help="candidates to run (repeatable)")
    parser.add_argument("--minutes", type=float, default=18.0, help="wall-time cap per candidate")
    parser.add_argument("--config", type=Path, default=Path("configs/worldmodel-small.yaml"))
    parser.add_argument("--tokenizer", type=Path, default=Path("stages/small/tokenizer"))
    args = parser.parse_args(argv)
    from worldmodel.training.preset import export_pipeline, max_time

    for name in args.only or list(CANDIDATES):
        step_seconds = CANDIDATES[name][0]
        steps = int(args.minutes * 60 / step_seconds)
        start = time.perf_counter()
        config = candidate_config(name, args.config)
        subprocess.run([sys.executable, "-m", "worldmodel.cli", "train", "--config", str(config),
                        f"--trainer.max_steps={steps}", f"--trainer.max_time={max_time(args.minutes)}"], check=True)
        seconds = time.perf_counter() - start
        root = Path("outputs/worldmodel-designs") / name
        export_pipeline(root / "pipeline", {"tokenizer": args.tokenizer, "world_model": root / "worldmodel"},
                        {"candidate": name, "steps": steps, "minutes": args.minutes, "seconds": round(seconds)})
        print(f"{name}: {steps} steps scheduled, {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
