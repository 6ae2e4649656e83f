"""Writing the profiler's files (report.json, trace.json, comparison.json) so a full disk loses nothing."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from carla_bridge.core.files import atomic_file


def write_text_safely(path: Path, text: str) -> None:
    """``text`` to ``path`` whole (a full disk leaves the previous file, or none, never half a JSON), with
    an error that names the file, as OSError's own message for ENOSPC does not."""
    with open_text_safely(path) as file:
        file.write(text)


@contextlib.contextmanager
def open_text_safely(path: Path) -> Iterator[TextIO]:
    """write_text_safely for text written piece by piece (a long run's trace.json is too big to hold
    as one string): ``path`` is replaced only once the block has ended without an error, and an OSError
    comes back naming ``path``."""
    try:
        with atomic_file(path, "w") as file:
            yield file
    except OSError as error:
        raise _naming_the_file(error, Path(path)) from error


def _naming_the_file(error: OSError, path: Path) -> OSError:
    fix = "free some disk space or" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "check its permissions or"
    return OSError(error.errno, f"cannot write {path} ({error.strerror or error}); {fix} pass another --report DIR")
