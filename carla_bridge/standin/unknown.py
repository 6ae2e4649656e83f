"""The RPCs the stand-in was asked for and does not serve: counted for the shutdown summary and logged
once each, in memory and log lines that stay bounded whatever clients send."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from carla_bridge.standin.logtext import shorten

log = logging.getLogger("carla_bridge.standin.methods")

MAX_NAMES = 100


class UnknownCalls:
    """How often each unknown method was called, by its shortened name (logtext.shorten), for at most
    ``max_names`` names; calls of further names are only counted together."""

    def __init__(self, max_names: int = MAX_NAMES) -> None:
        self.max_names = max_names
        self.counts: Counter[str] = Counter()
        self.uncounted = 0  # calls of names beyond max_names
        self._lock = threading.Lock()  # every rpc connection has a thread of its own

    def record(self, method: str, args: list, handlers_in: str) -> str:
        """Count one call; the first of a name is logged at ERROR level. Returns the shortened name."""
        name = shorten(method)
        with self._lock:
            first = name not in self.counts
            counted = not first or len(self.counts) < self.max_names
            if counted:
                self.counts[name] += 1
            else:
                self.uncounted += 1
            first_uncounted = not counted and self.uncounted == 1
        if counted and first:
            log.error("UNKNOWN RPC %r called with %s: answered with an error; add a handler in %s",
                      name, shorten(args), handlers_in)
        elif first_uncounted:
            log.error("more than %d distinct unknown RPCs: the next ones are only counted", self.max_names)
        return name

    def __bool__(self) -> bool:
        return bool(self.counts)

    def summary(self) -> str:
        """``name xN`` per name, most called first, and the calls of names beyond the limit."""
        with self._lock:
            parts = [f"{name!r} x{count}" for name, count in self.counts.most_common()]
            if self.uncounted:
                parts.append(f"{self.uncounted} calls of further names")
        return ", ".join(parts)
