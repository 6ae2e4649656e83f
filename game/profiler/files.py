"""Writing the profiler's files (report.json, trace.json, comparison.json) so a full disk loses nothing."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_text_safely(path: Path, text: str) -> None:
    """Write through a temporary file and a rename: a full disk leaves the previous file (or none),
    never half a JSON; the error names the file, as OSError's own message for ENOSPC does not."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {path} ({error.strerror or error}); free some disk "
                      "space or pass another --report DIR") from error
