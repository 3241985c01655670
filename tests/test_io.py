"""Atomic writes and folder replacement: readers never see a half-written file or a missing folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldmodel.io import replace_dir, write_json_atomic


def test_replace_dir_swaps_in_the_new_folder_and_removes_the_old(tmp_path: Path) -> None:
    new, dst = tmp_path / "new", tmp_path / "dst"
    new.mkdir()
    (new / "weights").write_text("new")
    replace_dir(new, dst)  # no dst yet: a plain rename
    assert (dst / "weights").read_text() == "new"
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "weights").write_text("newer")
    replace_dir(newer, dst)
    assert (dst / "weights").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst"]


def test_write_json_atomic_leaves_no_temp_file_on_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []
