"""Wire values as the stand-in's log shows them: cut to a few dozen characters, whatever a client sent
(a 1 MiB method name, a list where a name belongs, a thousand arguments), so that one client cannot
fill the log or the memory that formats it."""

from __future__ import annotations

import reprlib
from typing import Any

NAME_CHARS = 64

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = NAME_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3


def shorten(value: Any, limit: int = NAME_CHARS) -> str:
    """A string as it is when it fits in ``limit`` characters, else its start and its length; anything
    else as a repr whose strings, containers and nesting are cut (reprlib), at most 4 * ``limit`` long."""
    if isinstance(value, str):
        return value if len(value) <= limit else f"{value[:limit]}... ({len(value)} characters)"
    text = _REPR.repr(value)
    return text if len(text) <= 4 * limit else text[:4 * limit] + "..."
