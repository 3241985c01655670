"""Atomic file writes: nothing is ever half-written."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file keeps the final suffix (``.x.tmp123.mp4``) so that writers which pick a
    container from the suffix (PyAV, matplotlib) still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def read_json(path: str | os.PathLike, error: type[Exception] = ValueError) -> Any:
    """The JSON in ``path``; ``error`` naming the file when it is not valid UTF-8 JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise error(f"{path} is not valid JSON ({err})") from err


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Move the finished folder ``src`` onto ``dst`` by rename, never leaving a moment without a complete ``dst``.

    When ``dst`` exists the two folders are swapped atomically (``renameat2`` exchange on Linux; elsewhere the
    old folder is renamed aside first, a window of one rename) and the old contents are deleted afterwards.
    """
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.rename(src, dst)
        return dst
    if _exchange(src, dst):
        shutil.rmtree(src)
        return dst
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old)
    return dst


def _check_folder_writable(folder: Path, what: str) -> None:
    """Raise a clear ``ValueError`` unless files can be created in ``folder`` or in its nearest existing ancestor."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{what}: {ancestor} is a file, so no folder can be made under it")
    try:  # a real probe: permission bits say nothing for root or on read-only file systems
        with tempfile.TemporaryFile(dir=ancestor, prefix=".worldmodel-probe."):
            pass
    except OSError:
        raise ValueError(f"{what}: the folder {ancestor} is not writable") from None


def check_writable_file(path: str | os.PathLike, flag: str) -> Path:
    """Check before any work that the output file ``path`` (given as ``flag``) can be written; return it."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory: expected a file path inside it, e.g. {path / 'out.mp4'}")
    _check_folder_writable(path.parent, f"{flag} {path}")
    return path


def check_writable_dir(path: str | os.PathLike, flag: str) -> Path:
    """Check before any work that the output folder ``path`` (given as ``flag``) can be made or written; return it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is an existing file: expected a folder (new, or one to replace)")
    _check_folder_writable(path, f"{flag} {path}")
    return path
