"""``worldmodel train``: LightningCLI over the project's YAML configs.

``worldmodel train --config configs/tokenizer-tiny.yaml [--trainer.max_steps=100 ...]`` runs
``fit`` with the LightningModule and LightningDataModule named (``class_path``) in the config; any
LightningCLI flag can follow. ``--ckpt_path last`` resumes.
``worldmodel train --preset tiny [--accelerator gpu]``
reproduces the shipped default (see ``worldmodel.training.preset``).
"""

from __future__ import annotations

import argparse
import warnings


def run_lightning_cli(args: list[str]) -> None:
    """Run ``LightningCLI`` ``fit`` with subclass mode for model and data, on the given arguments."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")

    LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        args=["fit", *args],  # sys.argv stays intact so that DDP can re-launch this same command
    )


def _train(args: argparse.Namespace) -> int:
    if args.lightning_args[:1] == ["--preset"]:
        return _preset(args.lightning_args[1:])
    if not args.lightning_args:
        raise ValueError("worldmodel train needs a config, e.g. --config configs/tokenizer-tiny.yaml")
    run_lightning_cli(args.lightning_args)
    return 0


def _preset(argv: list[str]) -> int:
    from worldmodel.pipelines import DEFAULT_CHECKPOINT
    from worldmodel.training.preset import STAGES, train_preset

    parser = argparse.ArgumentParser(prog="worldmodel train --preset",
                                     description="reproduce a shipped default; --trainer.* flags go to every stage")
    parser.add_argument("name", choices=["tiny"], help="the preset to train")
    parser.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"], help="trainer accelerator")
    parser.add_argument("--workers", type=int, default=2, help="data workers (default 2)")
    parser.add_argument("--export", default=str(DEFAULT_CHECKPOINT), help="pipeline folder to write")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    args, trainer_args = parser.parse_known_args(argv)
    train_preset(args.export, accelerator=args.accelerator, workers=args.workers,
                 stages=tuple(s for s in args.stages.split(",") if s), trainer_args=tuple(trainer_args))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command."""
    parser = subparsers.add_parser(
        "train",
        help="train a tokenizer or world model from a LightningCLI YAML config",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prefix_chars="+",  # every dash-flag goes to LightningCLI untouched
    )
    parser.add_argument("lightning_args", nargs=argparse.REMAINDER, help="LightningCLI arguments (--config ...)")
    parser.set_defaults(func=_train)
