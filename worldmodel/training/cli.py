"""``worldmodel train``: LightningCLI over the project's YAML configs.

``worldmodel train --config configs/tokenizer-tiny.yaml [--trainer.max_steps=100 ...]`` runs
``fit`` with the LightningModule and LightningDataModule named (``class_path``) in the config; any
LightningCLI flag can follow. ``--ckpt_path last`` resumes.
"""

from __future__ import annotations

import argparse
import sys


def run_lightning_cli(args: list[str]) -> None:
    """Run ``LightningCLI`` ``fit`` with subclass mode for model and data, on the given arguments."""
    from lightning.pytorch import LightningDataModule, LightningModule
    from lightning.pytorch.cli import LightningCLI

    sys.argv = ["worldmodel train", "fit", *args]  # LightningCLI reads its own argv
    LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
    )


def _train(args: argparse.Namespace) -> int:
    if not args.lightning_args:
        raise ValueError("worldmodel train needs a config, e.g. --config configs/tokenizer-tiny.yaml")
    run_lightning_cli(args.lightning_args)
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
