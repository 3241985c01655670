"""`make bench` runs every benchmark script, and the commit it stamps ignores the files the run itself rewrites.

Reads text and runs git only (no torch).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HELPERS = {"configs", "machine", "readme_tables"}  # modules the scripts import, not benchmarks


def _machine():
    spec = importlib.util.spec_from_file_location("machine", ROOT / "benchmarks" / "machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_bench_runs_every_benchmark_script_then_the_readme_tables():
    makefile = (ROOT / "Makefile").read_text()
    match = re.search(r"^BENCHES\s*:=\s*((?:.*\\\n)*.*)$", makefile, re.MULTILINE)
    assert match, "Makefile has no BENCHES list"
    listed = set(match.group(1).replace("\\\n", " ").split())
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - HELPERS - {"data"}
    assert listed == scripts, f"BENCHES misses {scripts - listed} or lists absent {listed - scripts}"
    recipe = makefile.split("\nbench: install\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in recipe.splitlines()]
    assert lines[0].endswith("benchmarks/data.py") and lines[-1].endswith("benchmarks/readme_tables.py")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.mark.parametrize(("edited", "dirty"), [("benchmarks/results/moe.json", False), ("README.md", False),
                                               ("worldmodel/model.py", True)])
def test_the_commit_stamp_ignores_results_files_only(tmp_path, monkeypatch, edited, dirty):
    for name in ("benchmarks/results/moe.json", "README.md", "worldmodel/model.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("before\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "start")
    machine = _machine()
    monkeypatch.setattr(machine, "ROOT", tmp_path)
    head = machine.current_commit()
    assert re.fullmatch(r"[0-9a-f]{40}", head)
    (tmp_path / edited).write_text("after\n")
    assert machine.current_commit() == (f"{head}-dirty" if dirty else head)
