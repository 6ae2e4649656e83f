"""Checkpoints get the permissions any new file gets, not safetensors' private 0600.

safetensors' ``save_file`` creates its file with mode 0600 whatever the umask, so a QA pass found
generator.safetensors, train_state.safetensors and calibrated checkpoints unreadable to the group and
to other users (a shared run folder, a web server handing out models) where every other file of the
run was 0644. Writers of such files call ``replace_with_default_mode`` instead of ``os.replace``.
"""

from __future__ import annotations

import os
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status); elsewhere
    set and restored at once, as os offers no other way."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def replace_with_default_mode(tmp: str | Path, path: str | Path) -> None:
    """Give ``tmp`` the default mode of a new file, then rename it to ``path`` atomically."""
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, path)
