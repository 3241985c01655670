"""What every benchmark writes beside its figures: the machine, the commit and the command."""

import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine_name() -> str:
    """CPU model name, logical CPU count and which of the matmul-relevant CPU features it has (bf16 is emulated and
    slow without avx512_bf16 / amx)."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in (platform.processor(), platform.machine()):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    features = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in CPU_FEATURES) if flags else "features unknown"
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} ({features})"


def current_commit() -> str:
    """``git rev-parse HEAD`` of the repository, with ``-dirty`` when tracked files differ from it. The results
    files and the README tables generated from them do not count: ``make bench`` rewrites them as it goes, and the
    scripts that run after the first one still measure the committed code."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results", ":(exclude)README.md"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def write_results(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write a benchmark's JSON atomically, stamping the payload and every new result row with commit and command
    (rows kept from an earlier run, e.g. by an ``--only`` rerun of one part, keep their own)."""
    from worldmodel.io import write_json_atomic

    provenance = {"commit": current_commit(), "command": shlex.join(["python", *sys.argv])}
    rows = [{**provenance, **row} for row in payload.get("results", [])]
    write_json_atomic(path, {**payload, **provenance, "results": rows})
