"""Writing the profiler's files (report.json, trace.json, comparison.json) so a full disk loses nothing."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from carla_bridge.core.files import write_atomic


def write_text_safely(path: Path, text: str) -> None:
    """carla_bridge.core.files.write_atomic (a temporary file and a rename: a full disk leaves the
    previous file, or none, never half a JSON), with an error that names the file, as OSError's own
    message for ENOSPC does not."""
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as error:
        raise _naming_the_file(error, Path(path)) from error


@contextlib.contextmanager
def open_text_safely(path: Path) -> Iterator[TextIO]:
    """write_text_safely for text written piece by piece (a long run's trace.json is too big to hold
    as one string): the block writes into a temporary file that replaces `path` only once the block
    has ended without an error. Any error, in the block or from the disk, removes the temporary file,
    so no half file is left; an OSError comes back naming `path`."""
    path = Path(path)
    partial = _partial_path(path)
    try:
        with partial.open("w", encoding="utf-8") as file:
            yield file
        # Closing flushes the last buffer, where a full disk may show up first: rename only after it.
        os.replace(partial, path)
    except OSError as error:
        _remove(partial)
        raise _naming_the_file(error, path) from error
    except BaseException:  # e.g. Ctrl+C half way through a long trace
        _remove(partial)
        raise


def _partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _remove(partial: Path) -> None:
    with contextlib.suppress(OSError):
        partial.unlink(missing_ok=True)


def _naming_the_file(error: OSError, path: Path) -> OSError:
    fix = "free some disk space or" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "check its permissions or"
    return OSError(error.errno, f"cannot write {path} ({error.strerror or error}); {fix} pass another --report DIR")
