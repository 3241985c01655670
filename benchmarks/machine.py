"""The machine name every benchmark writes into its JSON."""

import os
import platform
from pathlib import Path


def machine_name() -> str:
    """CPU model name and logical CPU count (falls back to the platform string)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()}"
