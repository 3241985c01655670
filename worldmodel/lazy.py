"""Lazy package attributes (PEP 562): a package names what it exports and where; nothing heavy is imported until a
name is used, so ``worldmodel --help`` and simulation workers never pay for torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``exports`` maps each name to the module that defines it (a full
    dotted name, or a sub-module name relative to ``package``)."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = exports[name]
        return getattr(importlib.import_module(module if "." in module else f"{package}.{module}"), name)

    return __getattr__
