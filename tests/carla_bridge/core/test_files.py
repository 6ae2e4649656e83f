"""Atomic writes leave the old file or the new one, never half of either; folder_write_problem answers by
writing, so it also catches what permission bits do not show."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from carla_bridge.core.files import (atomic_file, atomic_path, current_umask, file_write_problem, folder_write_problem,
                                     stamped_folder, write_atomic)


def test_a_writable_folder_is_made_and_left_clean(tmp_path):
    folder = tmp_path / "a" / "b"
    assert folder_write_problem(folder) is None
    assert folder.is_dir() and list(folder.iterdir()) == []  # the probe file is gone


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    assert folder_write_problem(tmp_path / "file" / "sub") == f"{tmp_path / 'file'} is a file, not a folder"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs Linux's /sys")
def test_a_folder_that_refuses_writes_despite_its_permission_bits():
    # root passes os.access on /sys, yet no file can be created there.
    problem = folder_write_problem("/sys")
    assert problem is not None and problem.startswith("is not writable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_folder(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert folder_write_problem(tmp_path).startswith("is not writable")
    finally:
        tmp_path.chmod(0o700)


def test_a_file_output_names_its_folder(tmp_path):
    assert file_write_problem(tmp_path / "new" / "out.json") is None and (tmp_path / "new").is_dir()
    assert file_write_problem(tmp_path) == "is a folder; name a file in it"
    (tmp_path / "file").write_text("x")
    assert file_write_problem(tmp_path / "file" / "out.json") == (
        f"its folder {tmp_path / 'file'}: {tmp_path / 'file'} is a file, not a folder")


def test_an_atomic_write_replaces_the_file_whole_with_the_default_mode(tmp_path):
    target = tmp_path / "out" / "report.json"
    write_atomic(target, b"first")
    with atomic_file(target, "w", durable=True) as handle:
        handle.write("second")
        assert target.read_bytes() == b"first"  # the old file stays whole until the block ends
    assert target.read_text() == "second"
    assert target.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not mkstemp's 0600
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="export failed"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("export failed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_a_stamped_folder_is_fresh_and_sorts_by_time(tmp_path, monkeypatch):
    assert re.fullmatch(r"\d{8}-\d{6}", stamped_folder(tmp_path).name)
    monkeypatch.setattr(time, "strftime", lambda _format: "20250101-120000")  # three runs in one second
    names = []
    for _ in range(3):
        folder = stamped_folder(tmp_path)
        folder.mkdir()
        names.append(folder.name)
    assert names == ["20250101-120000", "20250101-120000-2", "20250101-120000-3"]
