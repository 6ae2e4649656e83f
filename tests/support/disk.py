"""Disk doubles for the recording tests: a real, tiny tmpfs where the machine lets the tests mount one
(root; elsewhere the test skips and names the test that covers it by injection), and injected faults
on the writer's renames (os.replace), which every lossless frame file goes through."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest


@contextlib.contextmanager
def tiny_tmpfs(size: str, covered_by: str):
    """A fresh tmpfs of ``size`` (mount's notation: '8k', '256k') under /tmp, unmounted after."""
    mount = Path("/tmp") / f"nd-tmpfs-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root); {covered_by} covers this")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        shutil.rmtree(mount, ignore_errors=True)


def fill_disk_at_frame(monkeypatch: pytest.MonkeyPatch, position: int) -> None:
    """The disk fills up in the middle of frame ``position``: its labels file lands, its flow file (and
    every later one) fails with ENOSPC."""
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).parent.name == "flow" and int(Path(dst).stem) >= position:
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def slow_disk(monkeypatch: pytest.MonkeyPatch, seconds: float = 0.05) -> None:
    """A disk that takes ``seconds`` per file."""
    real_replace = os.replace

    def replace(src, dst):
        time.sleep(seconds)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
