"""A figure file (``--strip``): checked before any rendering, written whole or not at all.

A QA pass found `evaluate --strip /proc/strip.png` fail after the whole evaluation, losing its table
and JSON; a folder given as --strip left a stray ``<folder>.tmp`` file; `procedural --strip out` (no
extension) failed after rendering and left a 0-byte ``out``. Both tools that write a strip check it
here up front and write through ``file_mode.write_atomic``. A strip that already exists is refused
unless --overwrite, as launch.py does for --screenshot: a strip is the figure of a README or model
card, and replacing it silently would change a published picture.
"""

from __future__ import annotations

from pathlib import Path

from carla_bridge.core.writable import file_write_problem


def figure_problem(flag: str, path: str | Path, suffixes: tuple[str, ...], overwrite: bool) -> str | None:
    """None when ``path`` can take the figure; otherwise one line naming ``flag``, the problem and the
    fix. ``suffixes``: the file name endings the writer knows (lower case, first is the suggestion)."""
    path = Path(path)
    if path.is_dir():
        return f"{flag} {path}: is a folder; name a file in it, e.g. {path / ('strip' + suffixes[0])}"
    if path.exists() and not path.is_file():  # the atomic rename would put a file in its place
        return f"{flag} {path}: is not a regular file (a device or a pipe); name an image file"
    if path.suffix.lower() not in suffixes:
        return (f"{flag} {path}: must end in {', '.join(suffixes)} (the image formats it can write), "
                f"e.g. {path.with_suffix(suffixes[0])}")
    problem = file_write_problem(path)  # by creating a file: os.access says yes to root and to /sys
    if problem is not None:
        return f"{flag} {path}: {problem}; pass another path"
    if path.exists() and not overwrite:
        return f"{flag} {path}: already exists (a previous figure); pass --overwrite to replace it, or another path"
    return None
