"""folder_write_problem answers by writing, so it also catches what permission bits do not show."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from carla_bridge.core.files import file_write_problem, folder_write_problem


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
