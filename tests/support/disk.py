"""Shared helper of the full-disk tests (no tests here): a real, tiny tmpfs, where the machine lets
the tests mount one (root); elsewhere the test skips and names the test that covers it by injection."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
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
