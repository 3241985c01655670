"""worldmodel: simulate a physics world, tokenize video, train, generate and evaluate.

Each area owns its sub-commands in its own ``cli.py`` with a ``register(subparsers)`` function:
``data`` (datasets), ``train`` (training), ``generate`` / ``rollout`` / ``describe`` / ``ask`` (pipelines), ``evaluate``
(evaluation). Handlers are set with ``parser.set_defaults(func=...)`` and return an exit code; a command may set
``interrupt_hint`` (what Ctrl-C keeps and how to resume). User errors (``ValueError``, ``FileNotFoundError``,
a refused path) end in one line on stderr and exit code 2; Ctrl-C in one line and exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys

INTERRUPT_HINT = ("files finished before the interrupt are kept and nothing is half-written (every output is "
                  "written to a temporary file and renamed); run the command again to redo the rest")
COMMAND_MODULES = (
    "worldmodel.datasets.cli",
    "worldmodel.training.cli",
    "worldmodel.pipelines.cli",
    "worldmodel.pipelines.understanding_cli",
    "worldmodel.evaluation.cli",
    "worldmodel.serving.cli",
    "worldmodel.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every area's sub-commands."""
    parser = argparse.ArgumentParser(prog="worldmodel", description=__doc__.splitlines()[0].split(": ", 1)[1])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # a real missing dependency, not an area that is not built yet
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``worldmodel`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"worldmodel {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path the system refused (permissions, a full disk, a folder where a file goes)
        where = f"{err.filename}: " if err.filename else ""
        print(f"worldmodel {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = getattr(args, "interrupt_hint", None) or INTERRUPT_HINT
        print(f"\nworldmodel {args.command}: interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
