"""Can a folder take a new file? Found out by creating one, not by asking ``os.access``.

``os.access`` answers from permission bits: it says yes to root everywhere, and yes for folders whose
file system refuses writes anyway (``/sys``, a read-only mount, a full quota). A user QA pass found
runs that checked their output that way and failed only at the end, after all the work. Every tool
that writes a result checks its folder with this before it starts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def folder_write_problem(folder: str | Path) -> str | None:
    """None when a file can be created in ``folder`` (made first, with its parents, if missing);
    otherwise what is wrong, in words that fit after the folder's name."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):  # mkdir's own error names only the missing leaf
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot be created ({error.strerror or error})"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        return f"is not writable ({error.strerror or error})"
    return None


def file_write_problem(file: str | Path) -> str | None:
    """None when ``file`` can be written (its folder made first if missing); otherwise what is wrong,
    in words that fit after ``--flag FILE:``."""
    file = Path(file)
    if file.is_dir():
        return "is a folder; name a file in it"
    problem = folder_write_problem(file.parent)
    return None if problem is None else f"its folder {file.parent}: {problem}"
