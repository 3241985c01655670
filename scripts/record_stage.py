"""Commit one finished training stage of a recipe into ``stages/RECIPE``: its exported weights and its record.

    python scripts/record_stage.py --recipe small --component world_model --stage 1 \\
        --export outputs/worldmodel-small/worldmodel --logs outputs/worldmodel-small/logs/version_1 \\
        --command "worldmodel train --config configs/worldmodel-small.yaml ..." --device "..." --seconds 5580

Copies the ``save_pretrained`` folder ``--export`` to ``stages/RECIPE/COMPONENT`` (atomically) and writes
``stages/RECIPE/COMPONENT_training.json`` (``training.json`` for the tokenizer, as the earlier stages did): the
command, steps, seconds, device, the validation curves read from the Lightning CSV log (``val/ce``,
``val/text_ce``, the caption-use pair ``val/ce_first_frame`` / ``val/ce_first_frame_wrong_caption``,
``val/caption_probe`` or ``val/psnr``; their last values as ``val_ce`` ...), and the record of the previous stage of
the same component under ``previous_stages``. Once the folder holds both components it gets a
``model_index.json``: it is a pipeline folder (``--checkpoint stages/RECIPE``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

from worldmodel.io import replace_dir, write_json_atomic

CURVES = ("val/ce", "val/text_ce", "val/ce_first_frame", "val/ce_first_frame_wrong_caption", "val/caption_probe",
          "val/psnr")


def val_curves(logs: Path) -> tuple[int, dict[str, list[list[float]]]]:
    """``(last step, {metric: [[step, value], ...]})`` from a Lightning CSVLogger folder's ``metrics.csv``."""
    rows = list(csv.DictReader((logs / "metrics.csv").open(encoding="utf-8")))
    steps = [int(r["step"]) for r in rows if r.get("step")]
    curves = {name: [[int(r["step"]), round(float(r[name]), 4)] for r in rows if r.get(name)]
              for name in CURVES if rows and name in rows[0]}
    return (max(steps) + 1 if steps else 0), {k: v for k, v in curves.items() if v}


def write_model_index(folder: Path) -> None:
    """Make ``folder`` (``tokenizer/`` + ``world_model/``) a pipeline folder: the ``model_index.json`` that
    ``save_pretrained`` writes for that pair (no draft model)."""
    import tempfile

    from worldmodel.model import WorldModel
    from worldmodel.pipelines import TextToVideoPipeline
    from worldmodel.pretrained import load_pretrained
    from worldmodel.tokenizers import VideoTokenizer

    pipe = TextToVideoPipeline(tokenizer=load_pretrained(VideoTokenizer, folder / "tokenizer"),
                               world_model=load_pretrained(WorldModel, folder / "world_model"), draft_model=None)
    with tempfile.TemporaryDirectory() as tmp:
        pipe.save_pretrained(tmp)
        write_json_atomic(folder / "model_index.json", json.loads((Path(tmp) / "model_index.json").read_text()))


def main(argv: list[str] | None = None) -> int:
    """Copy the export and write the record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--component", required=True, choices=("tokenizer", "world_model"))
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument("--export", type=Path, required=True, help="the stage's save_pretrained folder")
    parser.add_argument("--logs", type=Path, required=True, help="the stage's CSVLogger folder (metrics.csv)")
    parser.add_argument("--command", required=True, help="the command that trained the stage")
    parser.add_argument("--device", required=True, help="what it ran on")
    parser.add_argument("--seconds", type=float, required=True, help="wall seconds of the stage")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimiser steps the exported weights saw (default: the log's last step + 1; give it "
                             "when the run was stopped after its last export)")
    parser.add_argument("--note", default="", help="anything a reader of the record needs (stopped by, next)")
    args = parser.parse_args(argv)
    if not (args.export / "config.json").is_file():
        parser.error(f"--export {args.export}: not a save_pretrained folder (no config.json)")
    folder = Path("stages") / args.recipe
    target = folder / args.component
    record_path = folder / ("training.json" if args.component == "tokenizer" else f"{args.component}_training.json")
    previous = json.loads(record_path.read_text(encoding="utf-8")) if record_path.is_file() else None
    steps, curves = val_curves(args.logs)
    steps = args.steps or steps
    record = {"recipe": args.recipe, "stage": args.stage, "component": args.component, "command": args.command,
              "steps": steps, "seconds": round(args.seconds), "device": args.device, "note": args.note,
              "val_curves": curves, **{k.replace("/", "_"): v[-1][1] for k, v in curves.items()},  # the last values
              "previous_stages": ([{k: v for k, v in previous.items() if k != "previous_stages"}]
                                  + previous.get("previous_stages", [])) if previous else []}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.export, tmp)
    replace_dir(tmp, target)
    write_json_atomic(record_path, record)
    if (folder / "tokenizer").is_dir() and (folder / "world_model").is_dir():
        write_model_index(folder)
    print(f"wrote {target} and {record_path} (stage {args.stage}, {steps} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
