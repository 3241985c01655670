"""Shared test settings: every test runs on one torch thread; the `load_script` fixture imports scripts/NAME.py.

Tiny models run thousands of small ops; on a busy 2-core machine one thread avoids synchronisation stalls
(measured 10-25x faster than two here).
"""

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _import_script(name: str):
    """The module of `scripts/NAME.py` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def load_script():
    """A function that imports `scripts/NAME.py` by its NAME."""
    return _import_script


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
