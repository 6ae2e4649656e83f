"""Files the project writes for others to read: whole or not at all, with the permissions any new
file gets.

Atomic: written under a temporary name in the same folder and renamed, so a reader (or a kill) never
sees half a file. Permissions: safetensors' ``save_file`` creates its file with mode 0600 whatever the
umask, and so does ``tempfile.mkstemp``, so a QA pass found generator.safetensors,
train_state.safetensors and calibrated checkpoints unreadable to the group and to other users (a
shared run folder, a web server handing out models) where every other file of the run was 0644.
Writers of such files call ``replace_with_default_mode`` instead of ``os.replace``, or ``write_atomic``.
"""

from __future__ import annotations

import os
import tempfile
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


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, renamed at the end: a
    reader never sees half a file, and a failure leaves neither a partial file nor the temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        replace_with_default_mode(tmp, path)  # not mkstemp's 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
