"""Atomic writes: the file gets the mode a plain ``open`` would give it, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ecellm.io import atomic_open, write_json


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_follow_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})  # the mode is checked first, then the helper
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask
    from ecellm.io import current_umask

    assert current_umask() == mask
    write_json(tmp_path / "a.json", {"x": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "shared.txt"
    path.write_text("old")
    path.chmod(0o664)
    with atomic_open(path) as fh:
        fh.write("new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o664


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
