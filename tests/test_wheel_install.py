"""The package works from a wheel install outside the repository: the configs and the serving page are package data.

The wheel is built from a copy of the sources (the checkout is not touched) and installed, without its
dependencies, into a fresh venv that borrows this venv's site-packages through a ``.pth`` path line (torch and
the rest are not reinstalled; the editable install of the checkout is not activated there: a path line runs no
``.pth`` file of that folder). Every command runs from a folder outside the repository.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from worldmodel.video import read_video, write_video

REPO = Path(__file__).resolve().parents[1]


def _build_wheel(tmp: Path) -> Path:
    """Build the wheel from a copy of the package sources; return its path."""
    src = tmp / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "configs", src / "configs")
    shutil.copytree(REPO / "worldmodel", src / "worldmodel", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp / "dist"), str(src)], check=True, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("worldmodel-*.whl")
    return wheel


def _fresh_venv(env: Path, wheel: Path) -> Path:
    """A venv holding only the wheel, reading every dependency from this interpreter's site-packages."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True)
    return python


def _user_videos(root: Path) -> None:
    """Two short videos of another size and frame rate than the model's (a moving square on noise)."""
    rng = np.random.default_rng(0)
    for name, (t, h, w) in {"a.mp4": (20, 48, 80), "sub/b.mkv": (24, 72, 72)}.items():
        frames = np.repeat(rng.integers(0, 80, (1, h, w, 3), dtype=np.uint8), t, axis=0)
        for i in range(t):
            x = 2 + i * (w - 14) // t
            frames[i, h // 3:h // 3 + 10, x:x + 10] = (230, 40, 40)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / name, frames, fps=10, lossless=name.endswith(".mkv"))


@pytest.mark.slow
def test_a_wheel_install_outside_the_repository_trains_a_tiny_preset_and_generates(tmp_path):
    wheel = _build_wheel(tmp_path / "build")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for config in (REPO / "configs").glob("*.yaml"):
        assert f"worldmodel/configs/{config.name}" in names
    for page in (REPO / "worldmodel" / "serving" / "page").iterdir():
        assert f"worldmodel/serving/page/{page.name}" in names
    assert "worldmodel/assets/default/model_index.json" in names

    python = _fresh_venv(tmp_path / "env", wheel)
    work = tmp_path / "elsewhere"
    work.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*args: str) -> str:
        done = subprocess.run([str(python.parent / "worldmodel"), *args], cwd=work, env=environ, text=True,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    where = subprocess.run([str(python), "-c", "import worldmodel; print(worldmodel.__file__)"], cwd=work,
                           env=environ, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(tmp_path / "env"), where

    help_text = run("train", "--help")
    assert help_text.index("presets") < help_text.index("tiny") < help_text.index("worldmodel tokenize")
    assert "worldmodel export" in help_text

    _user_videos(work / "videos")
    out = work / "mine"
    printed = run("train", "--preset", "tiny", "--videos", "videos", "--out", "mine", "--workers", "0",
                  "--trainer.max_steps=1", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
                  "--trainer.enable_model_summary=false")
    assert "no files were skipped" in printed, printed
    assert json.loads((out / "training.json").read_text())["clips"] >= 2
    run("generate", "a red square moves right", "--checkpoint", "mine", "-o", "g.mp4", "--frames", "1")
    assert read_video(work / "g.mp4").shape == (1, 64, 64, 3)
