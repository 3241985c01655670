"""The project's LightningCLI YAMLs as constructor arguments, for benchmarks that build models from them."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def find_mapping(node: Any, key: str) -> dict | None:
    """The first mapping in a parsed YAML tree that has ``key`` (the constructor arguments of a component)."""
    if isinstance(node, dict):
        if key in node:
            return node
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = find_mapping(child, key)
            if found is not None:
                return found
    return None


def config_kwargs(name: str, key: str, cls: Any) -> dict:
    """Constructor arguments of ``cls`` from ``configs/NAME``: the first mapping holding ``key``, filtered to what
    ``cls`` accepts ({} = the class defaults when the file is absent)."""
    path = CONFIGS / name
    if not path.is_file():
        return {}
    found = find_mapping(yaml.safe_load(path.read_text()), key)
    if found is None:
        raise ValueError(f"configs/{name} has no mapping with {key!r}: cannot build {cls.__name__} from it")
    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in found.items() if k in accepted}
